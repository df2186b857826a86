"""The Snakemake workflow on tiny configs: outputs, no-op reruns, exact reruns, clear errors."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.conftest import PHRASES, REPO, VOICES, pad_with_silence, speech_chunk
from tests.tiny_models import one_torch_thread, save_fairseq, save_hf, tiny_model
from w2vu.io.features import open_features
from w2vu.io.manifest import read_manifest

pytestmark = pytest.mark.slow
CORPUS = "my corpus (v1) & 'co'"
TINY_GAN = {"max_updates": 2, "validate_every": 1, "batch_size": 4}
# Decoding and self-training as small as they go: one grid point, a few HMM passes, short CTC.
TINY_DOWNSTREAM = {
    "decode": {"acoustic_scales": [0.5], "blank_weights": [0.0]},
    "selftrain": {"hmm_iters": 3, "hmm_gaussians": 40, "hmm_lm_weights": [10],
                  "ctc_iterations": 1, "ctc_max_updates": 4},
    "probe": {"steps": 5},
}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's Snakefile with the workdir's config."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--cores", "2", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def planned_jobs(workdir: Path) -> dict[str, int]:
    """Jobs a dry run would execute, by rule (empty when nothing is to be done)."""
    out = snakemake(workdir, "-n").stdout
    table = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", out, re.S)
    if not table:
        assert "Nothing to be done" in out, out
        return {}
    return {rule: int(n) for rule, n in (line.split() for line in table.group(1).splitlines())}


def write_config(workdir: Path, language: dict, audio: dict | None = None,
                 text: dict | None = None, features: dict | None = None) -> None:
    config = {"languages": {"tiny": {"espeak": "en-us", **language}},
              "audio": audio or {"shards": 2}, "text": text or {"min_phones": 1},
              "features": features or {"clusters": 8, "km_clusters": 4},
              "gan": TINY_GAN, **TINY_DOWNSTREAM}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))


def write_corpus(workdir: Path, synth) -> Path:
    """Speech in odd-named folders, a corrupt file, a note and unpaired text under `workdir`."""
    for i, (voice, text) in enumerate([(v, t) for v in VOICES for t in PHRASES[:2]]):
        padded = pad_with_silence([speech_chunk(synth, text, voice)], synth.sample_rate,
                                  lead=0.5, gap=0.7, seed=i)
        folder = workdir / CORPUS / f"spk {voice.name}"
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"utt {i} $x;.{'wav' if i % 2 else 'flac'}", padded.samples,
                 synth.sample_rate)
    (workdir / CORPUS / "broken.wav").write_bytes(b"RIFF" + bytes(100))
    (workdir / CORPUS / "notes.txt").write_text("not audio")
    (workdir / "text.txt").write_text("\n".join(PHRASES * 2) + "\n")
    return workdir


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, synth) -> Path:
    return write_corpus(tmp_path_factory.mktemp("wf"), synth)


def test_audio_stages_run_and_rerun_exactly(corpus):
    write_config(corpus, {"audio": {"paths": [CORPUS]}, "text": ["text.txt"],
                          "splits": {"fractions": {"train": 0.7, "valid": 0.3}}})
    snakemake(corpus)
    manifests = {s: read_manifest(corpus / f"results/tiny/manifest/{s}.tsv")
                 for s in ("train", "valid")}
    assert sum(len(m.rows) for m in manifests.values()) == 6
    for m in manifests.values():
        for path, (_, n) in zip(m.paths(), m.rows):
            assert sf.info(path).frames == n and sf.info(path).samplerate == 16000
    rejects = (corpus / "results/tiny/audio/rejects.tsv").read_text().splitlines()
    assert len(rejects) == 2 and "broken.wav" in rejects[1] and "\tconvert\t" in rejects[1]
    log = (corpus / "logs/tiny/audio_summary.log").read_text()
    assert "7 found = 6 kept + 1 rejected" in log
    assert "notes.txt" not in log and ".txt (1)" in (corpus / "logs/tiny/inventory.log").read_text()

    assert planned_jobs(corpus) == {}

    language = {"audio": {"paths": [CORPUS]}, "text": ["text.txt"],
                "splits": {"fractions": {"train": 0.7, "valid": 0.3}}}
    write_config(corpus, language, {"shards": 2, "vad": {"vad_threshold": 0.5}})
    features = {"extract": 6, "gather_features": 3, "kmeans": 1, "assign_clusters": 2,
                "pca": 1, "apply_pca": 2, "merge_clusters": 2, "mean_pool": 2, "km_targets": 1}
    # Everything after the GAN's inputs (no references here, so no scores or baselines).
    after_gan = {"gan_train": 1, "gan_select": 1, "gan_generate": 2, "wfst_tune": 1,
                 "wfst_decode": 2, "hmm_train": 1, "hmm_tune": 1, "hmm_decode": 2, "ctc_train": 1,
                 "ctc_transcribe": 2, "ctc_baseline": 1, "ctc_judge": 1, "ctc_final": 2,
                 "report_gan_training": 1, "report_phone_frequencies": 1, "all": 1}
    assert planned_jobs(corpus) == {"vad": 4, "trim": 4, "manifest": 2, "audio_summary": 1,
                                    **features, **after_gan, "report_speech_ratio": 1,
                                    "report_utterance_lengths": 1, "report_cluster_usage": 1}
    write_config(corpus, language, text={"min_phones": 1, "sil_prob": 0.5})
    assert planned_jobs(corpus) == {"phones": 1, "phone_lm": 2, "graphs": 3, **after_gan}
    write_config(corpus, language, text={"min_phones": 1, "min_word_count": 1})
    assert planned_jobs(corpus) == {"lexicon": 1, "phones": 1, "phone_lm": 2, "graphs": 3,
                                    **after_gan}
    # The word LM feeds only the word graphs and WFST decoding; self-training uses phone LMs.
    write_config(corpus, language, text={"min_phones": 1, "word_lm_prune": [0, 0, 1]})
    assert planned_jobs(corpus) == {"word_lm": 1, "graphs": 2, "wfst_tune": 1, "wfst_decode": 2,
                                    "all": 1}
    # The PCA features the HMM and CTC read do not depend on the cluster count.
    write_config(corpus, language, features={"clusters": 6, "km_clusters": 4})
    assert planned_jobs(corpus) == {"kmeans": 1, "assign_clusters": 2, "merge_clusters": 2,
                                    "mean_pool": 2, "report_cluster_usage": 1, **after_gan}


def test_demo_language_runs_to_selftrained_transcripts_and_scores(tmp_path):
    """Labels, a two-seed sweep, selection, transcripts of every split, WFST decoding, HMM and two
    CTC self-training rounds, and a scores row for every stage on every split."""
    config = {"languages": {"demo": {"espeak": "en-us", "demo": {"minutes": 0.4, "seed": 3},
                                     "splits": {"fractions": {"train": 0.5, "valid": 0.5}}}},
              "audio": {"shards": 1}, "gan": {**TINY_GAN, "seeds": [1, 2]},
              **TINY_DOWNSTREAM}
    config["selftrain"] = {**config["selftrain"], "ctc_iterations": 2}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
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
    stages = ("gan_viterbi", "baseline_frequent_phone", "baseline_random_generator",
              "probe_w2vu1", "hmm", "selftrained")
    for stage in (*stages, "gan_wfst"):
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
    per_stages = (*stages, "ctc_iter1", "ctc_iter2")
    assert {(r["stage"], r["split"], r["metric"]) for r in scores} == {
        *((stage, split, "per") for stage in per_stages for split in splits),
        *(("gan_wfst", split, "wer") for split in splits)}
    assert all(0 <= float(r["rate"]) for r in scores)
    assert planned_jobs(tmp_path) == {}


@pytest.mark.parametrize("language,message", [
    ({}, "languages.tiny: give `audio`"),
    ({"demo": {}, "splits": {"method": "hsh"}}, "'hsh' is not one of"),
    ({"demo": {"minutes": -1}}, "languages.tiny"),
    ({"audio": {"paths": ["a"], "table": "t.tsv"}, "text": ["text.txt"]}, "exactly one of"),
    ({"audio": {"paths": ["a"]}, "text": ["missing.txt"]}, "missing.txt not found"),
])
def test_bad_config_names_the_key(tmp_path, language, message):
    (tmp_path / "text.txt").write_text("hello\n")
    write_config(tmp_path, language)
    done = snakemake(tmp_path, "-n", check=False)
    assert done.returncode != 0 and message in done.stdout + done.stderr


def test_no_usable_audio_stops_with_clear_error(tmp_path):
    (tmp_path / "audio").mkdir()
    for i in range(3):
        (tmp_path / "audio" / f"bad{i}.wav").write_bytes(b"RIFF" + bytes(40))
    (tmp_path / "text.txt").write_text("hello world\n" * 3)
    write_config(tmp_path, {"audio": {"paths": ["audio"]}, "text": ["text.txt"]},
                 {"shards": 1})
    done = snakemake(tmp_path, check=False)
    assert done.returncode != 0
    assert "no usable audio: all 3 files were rejected" in done.stdout + done.stderr
    assert not (tmp_path / "results/tiny/audio/summary.tsv").exists()


def test_dry_run_on_demo_config_is_clean():
    """The embedded config parses, validates and lints."""
    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--snakefile",
                           str(REPO / "Snakefile"), "--directory", str(REPO)],
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Lints for" not in lint.stdout + lint.stderr


def test_features_from_hf_folder_and_fairseq_checkpoint(tmp_path, synth):
    """The same rules take a local Hugging Face folder or a fairseq checkpoint of the same model,
    and give the same features, in the fairseq layout, aligned with the manifests."""
    workdir = write_corpus(tmp_path, synth)
    with one_torch_thread():
        model = tiny_model(stable=True)
        save_hf(model, workdir / "hf model")
        save_fairseq(model, workdir / "model.pt", era="dict")
    language = {"audio": {"paths": [CORPUS]}, "text": ["text.txt"],
                "splits": {"fractions": {"train": 0.7, "valid": 0.3}}}
    features = {"backbone": "hf model", "layer": 2, "clusters": 8, "km_clusters": 4}
    write_config(workdir, language, features=features)
    layer = workdir / "results/tiny/features/layer"
    targets = [f"results/tiny/features/layer/precompute_pca32_cls8_mean_pooled/{split}.npy"
               for split in ("train", "valid")]
    snakemake(workdir, *targets, "results/tiny/features/layer/train.km")
    for split in ("train", "valid"):
        rows = len(read_manifest(workdir / f"results/tiny/manifest/{split}.tsv").rows)
        feats = open_features(layer / split)
        assert len(feats) == rows and feats.dim == 32
        pooled = open_features(layer / f"precompute_pca32_cls8_mean_pooled/{split}")
        assert len(pooled) == rows and pooled.dim == 32
    train_rows = len(read_manifest(workdir / "results/tiny/manifest/train.tsv").rows)
    assert len((layer / "train.km").read_text().splitlines()) == train_rows
    from_hf = np.load(layer / "train.npy")

    write_config(workdir, language, features={**features, "backbone": "model.pt"})
    planned = planned_jobs(workdir)
    assert planned["extract"] == 4 and "km_targets" not in planned  # MFCC targets stay
    snakemake(workdir, "--until", "gather_features")
    np.testing.assert_allclose(np.load(layer / "train.npy"), from_hf, atol=1e-5)

    # w2vu clusters the features PCA and the GAN see; the reference's accident (clustering on
    # the unnormalised waveform) is an option that adds one extraction and changes only k-means.
    write_config(workdir, language, features={**features, "backbone": "model.pt",
                                              "cluster_unnormalized": True})
    with_option = planned_jobs(workdir)
    write_config(workdir, language, features={**features, "backbone": "model.pt"})
    without = planned_jobs(workdir)
    extra = {rule: n - without.get(rule, 0) for rule, n in with_option.items()
             if n != without.get(rule, 0)}
    assert extra["extract"] == 4 and extra["gather_features"] == 2
    assert not {"pca", "apply_pca", "km_targets"} & set(extra)  # only the k-means branch
