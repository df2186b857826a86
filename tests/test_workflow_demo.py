"""The demo language from synthesis to self-trained transcripts and a scores row per stage."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from tests.workflow_helpers import (
    TEST_CONFIGS,
    check_model_reproduces_the_run,
    planned_jobs,
    snakemake,
)
from w2vu.io.features import open_features
from w2vu.io.manifest import read_manifest

pytestmark = pytest.mark.slow


def test_demo_language_runs_to_selftrained_transcripts_and_scores(tmp_path):
    """Labels, a two-seed sweep, selection, transcripts of every split, WFST decoding, HMM and two
    CTC self-training rounds, and a scores row for every stage on every split."""
    shutil.copyfile(TEST_CONFIGS / "demo.yaml", tmp_path / "config.yaml")  # as a user runs it
    snakemake(tmp_path)
    out = tmp_path / "results/demo"
    splits = ("train", "valid")
    rows = {s: len(read_manifest(out / f"manifest/{s}.tsv").rows) for s in splits}
    lines = [len((out / f"manifest/{s}.{ext}").read_text().splitlines())
             for s in splits for ext in ("wrd", "ltr", "phn")]
    assert min(rows.values()) > 0 and sum(lines) == 3 * sum(rows.values())
    assert (out / "corpus/text.txt").stat().st_size > 10_000

    selected = json.loads((out / "gan/selected.json").read_text())
    assert selected["n_runs"] == 2
    assert {r["params"]["seed"] for r in selected["runs"]} == {1, 2}
    assert selected["selected"]["name"] in {"cpref_gpref_smref_seed1", "cpref_gpref_smref_seed2"}
    stages = ("gan_viterbi", "baseline_frequent_phone", "baseline_constant_sentence",
              "baseline_random_generator", "probe_w2vu1", "hmm", "selftrained")
    for stage in (*stages, "gan_wfst", "baseline_constant_words"):
        for split in splits:
            hyp = (out / f"transcripts/{stage}/{split}.txt").read_text().splitlines()
            assert len(hyp) == rows[split], (stage, split)
    emissions = open_features(out / "transcripts/gan_viterbi/valid.emissions")
    assert len(emissions) == rows["valid"]
    rounds = [json.loads((out / f"selftrain/ctc/iter{r}/round.json").read_text())
              for r in (1, 2)]
    assert [r["round"] for r in rounds] == [1, 2]
    best = rounds[-1]["best_round"]
    final = (out / "transcripts/selftrained/valid.txt").read_text()
    source = (out / f"selftrain/ctc/iter{best}/transcripts/valid.txt" if best
              else out / "transcripts/hmm/valid.txt")
    assert final == source.read_text()
    with open(out / "scores.tsv") as f:
        scores = list(csv.DictReader(f, delimiter="\t"))
    per_stages = (*stages, "gan_wfst_phones", "ctc_iter1", "ctc_iter2")
    assert {(r["stage"], r["split"], r["metric"]) for r in scores} == {
        *((stage, split, "per") for stage in per_stages for split in splits),
        *((stage, split, "wer") for stage in ("gan_wfst", "baseline_constant_words")
          for split in splits)}
    assert all(0 <= float(r["rate"]) for r in scores)
    assert planned_jobs(tmp_path) == {}

    check_model_reproduces_the_run(tmp_path, out)
