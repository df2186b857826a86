"""The Snakemake workflow on tiny configs: outputs, no-op reruns, exact reruns, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import REPO
from tests.workflow_helpers import CORPUS, planned_jobs, snakemake, write_config, write_corpus
from w2vu.io.manifest import read_manifest

pytestmark = pytest.mark.slow


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
                 "ctc_transcribe": 2, "ctc_judge": 2, "ctc_best": 2,
                 "report_gan_training": 1, "report_phone_frequencies": 1, "model": 1, "all": 1}
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
                                    "model": 1, "all": 1}
    # The PCA features the HMM and CTC read do not depend on the cluster count.
    write_config(corpus, language, features={"clusters": 6, "km_clusters": 4})
    assert planned_jobs(corpus) == {"kmeans": 1, "assign_clusters": 2, "merge_clusters": 2,
                                    "mean_pool": 2, "report_cluster_usage": 1, **after_gan}


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


def test_text_in_another_encoding_stops_before_any_job(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "text.txt").write_bytes("Élisabeth était là.\n".encode("latin-1") * 50)
    write_config(tmp_path, {"audio": {"paths": ["a"]}, "text": ["text.txt"]})
    done = snakemake(tmp_path, "-n", check=False)
    assert done.returncode != 0
    assert ("languages.tiny.text: text.txt: 50 of 50 lines are not UTF-8 (likely Latin-1 or "
            "Windows-1252); convert it to UTF-8") in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


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
