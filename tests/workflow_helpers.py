"""Running the workflow in tests: a tiny corpus with awkward names, tiny configs, Snakemake in a
subprocess, its dry-run job counts, and the check that a run's model folder reproduces it (shared
by the workflow test files)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile as sf
import yaml

from tests.conftest import PHRASES, REPO, VOICES, pad_with_silence, speech_chunk
from w2vu.audio.inventory import read_shard_list
from w2vu.io.manifest import read_manifest

CORPUS = "my corpus (v1) & 'co'"
# The runnable test configs (config/test/, config/README.md): the workflow tests start from them.
TEST_CONFIGS = REPO / "config" / "test"
TINY = yaml.safe_load((TEST_CONFIGS / "tiny.yaml").read_text(encoding="utf-8"))
TINY_GAN = TINY["gan"]
# Decoding and self-training as small as they go: one grid point, a few HMM passes, short CTC.
TINY_DOWNSTREAM = {section: TINY[section] for section in ("decode", "selftrain", "probe")}


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
    """config/test/tiny.yaml on the test's own corpus (`language`), with the sections a test
    varies replaced."""
    config = {**TINY, "languages": {"tiny": {"espeak": "en-us", **language}}}
    for section, values in (("audio", audio), ("text", text), ("features", features)):
        if values is not None:
            config[section] = values
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


def check_model_reproduces_the_run(tmp_path: Path, out: Path, phones: str = "selftrained",
                                   kinds: tuple[str, ...] = ("ctc", "hmm")) -> None:
    """The model folder, moved elsewhere, transcribes the valid split's original files into
    exactly the run's `phones` stage and words, batch by batch; a bad file (alone in the last
    batch) gets its own row and stderr line, and exit status 1."""
    info = json.loads((out / "model/model.json").read_text())
    assert info["system"]["reproduces"] == phones
    assert info["system"]["kind"] in kinds
    assert {"rate", "stage"} <= set(info["scores"][0]) and info["unsupervised_selection"]["method"]
    assert phones in {row["stage"] for row in info["scores"]}
    assert not any(p.is_symlink() for p in (out / "model").rglob("*"))
    moved = tmp_path / "elsewhere" / "my model"
    shutil.copytree(out / "model", moved)
    by_key = {e.key: e.path for lst in sorted((out / "audio/inventory").glob("[0-9]*.tsv"))
              for e in read_shard_list(lst, "valid")}
    keys = [os.path.splitext(rel.split("/", 1)[1])[0]
            for rel, _ in read_manifest(out / "manifest/valid.tsv").rows]
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF" + bytes(100))
    inputs = [by_key[k] for k in keys] + [str(bad)]
    done = subprocess.run([sys.executable, "-m", "w2vu", "transcribe", "--model", str(moved),
                           "--format", "jsonl", "--threads", "1", "--batch-files", "2", *inputs],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["path"] for r in rows] == inputs
    assert "error" in rows[-1] and f"{bad}: convert:" in done.stderr
    expected = (out / f"transcripts/{phones}/valid.txt").read_text().splitlines()
    words = (out / "transcripts/gan_wfst/valid.txt").read_text().splitlines()
    assert [r["phones"] for r in rows[:-1]] == expected
    assert [r["words"] for r in rows[:-1]] == words
    assert all(r["seconds"] > 0 for r in rows[:-1])
    export = subprocess.run([sys.executable, "-m", "w2vu", "export-hf", "--model", str(moved),
                             "--out", str(tmp_path / "hf")], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert export.returncode == 2 and "no Hugging Face processor reproduces" in export.stderr
    assert len(export.stderr.strip().splitlines()) == 1 and not (tmp_path / "hf").exists()
