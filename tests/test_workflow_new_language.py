"""A new language with only word transcripts as references: a small Swedish corpus synthesised
with espeak-ng, a references table of path and transcript, and the whole workflow to a complete
`scores.tsv` (the references are phonemised by the language's own lexicon path), and a model
folder whose phones are the GAN's words spelt through the lexicon."""

from __future__ import annotations

import csv
import re

import pytest
import soundfile as sf
import yaml

from tests.conftest import pad_with_silence, speech_chunk
from tests.workflow_helpers import (
    TINY_DOWNSTREAM,
    TINY_GAN,
    check_model_reproduces_the_run,
    snakemake,
)
from w2vu.demo.synth import Voice
from w2vu.io.manifest import read_manifest

pytestmark = pytest.mark.slow
SPOKEN = ("Jag heter Anna och bor i Stockholm.", "Vi läser en bok om havet.",
          "Han köper bröd och mjölk.", "Hon tycker om att simma i sjön.")
UNPAIRED = ("Barnen leker i parken på eftermiddagen.", "Min bror dricker kaffe varje morgon.",
            "Det regnar ofta i Göteborg på hösten.", "Vi åker tåg till Uppsala i morgon.")
VOICES = (Voice("sv+m1", 160, 45), Voice("sv+f2", 150, 65))


def test_word_only_references_of_a_new_language_give_complete_scores(tmp_path, synth):
    table = ["path\ttranscript"]
    for i, (voice, sentence) in enumerate((v, s) for v in VOICES for s in SPOKEN):
        padded = pad_with_silence([speech_chunk(synth, sentence, voice)], synth.sample_rate,
                                  lead=0.4, gap=0.5, seed=i)
        (tmp_path / "ljud").mkdir(exist_ok=True)
        sf.write(tmp_path / "ljud" / f"yttrande{i}.wav", padded.samples, synth.sample_rate)
        table.append(f"ljud/yttrande{i}.wav\t{sentence}")
    (tmp_path / "referenser.tsv").write_text("\n".join(table) + "\n")
    (tmp_path / "text.txt").write_text("\n".join((*SPOKEN, *UNPAIRED) * 3) + "\n")
    config = {"languages": {"sv": {"espeak": "sv", "audio": {"paths": ["ljud"]},
                                   "text": ["text.txt"], "references": "referenser.tsv",
                                   "splits": {"fractions": {"train": 0.5, "valid": 0.5}}}},
              "audio": {"shards": 1}, "text": {"min_phones": 1},
              "features": {"clusters": 64, "km_clusters": 4, "shards": 1}, "gan": TINY_GAN,
              **TINY_DOWNSTREAM,
              # self-training from the GAN's words, CTC from those labels, the HMM's words
              "selftrain": {**TINY_DOWNSTREAM["selftrain"], "labels": "gan_wfst",
                            "ctc_from": "labels", "hmm_words": True,
                            "hmm_word_lm_weights": [10]},
              "model": {"system": "gan_words"}}  # the model's phones: the GAN's words spelt
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))

    done = snakemake(tmp_path, "results/sv/scores.tsv", "results/sv/model")

    out = tmp_path / "results/sv"
    inventory = set((out / "text/phones/dict.phn.txt").read_text().split()[::2])
    for split in ("train", "valid"):
        rows = len(read_manifest(out / f"manifest/{split}.tsv").rows)
        phones = (out / f"manifest/{split}.phn").read_text().splitlines()
        assert len(phones) == rows > 0 and all(phones), split  # every utterance phonemised
        assert {p for line in phones for p in line.split()} <= inventory
        assert not (out / f"manifest/{split}.given.phn").read_text().strip()
    with open(out / "scores.tsv", encoding="utf-8") as f:
        scores = list(csv.DictReader(f, delimiter="\t"))
    stages = {r["stage"] for r in scores}
    assert {"gan_viterbi", "baseline_frequent_phone", "baseline_constant_sentence",
            "baseline_random_generator", "probe_w2vu1", "hmm", "ctc_iter1", "selftrained",
            "gan_wfst", "hmm_words", "baseline_constant_words"} <= stages
    labels = "transcripts/gan_wfst_phones/train.txt"
    lexicon = dict(line.split("\t") for line in (out / "text/lexicon_filtered.lst")
                   .read_text().splitlines())
    words = (out / "transcripts/gan_wfst/train.txt").read_text().splitlines()
    assert (out / labels).read_text().splitlines() == [
        " ".join(lexicon[w] for w in line.split()) for line in words]
    for rule in ("hmm_train", "ctc_train"):  # both learnt from the words' phones
        inputs = re.search(rf"rule {rule}:\n\s+input: ([^\n]*)", done.stdout + done.stderr)
        assert inputs and f"results/sv/{labels}" in inputs.group(1), rule
    assert len(scores) == 2 * len(stages)
    assert all(r["rate"] not in ("", "nan", "failed") and int(r["reference_tokens"]) > 0
               for r in scores), scores
    check_model_reproduces_the_run(tmp_path, out, "gan_wfst_phones", ("gan_words",))
