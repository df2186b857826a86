"""Same config, same bytes: the audio, text and feature stages run twice from scratch, in two
folders and with different `--cores`, write identical files apart from the absolute paths that
README ("Determinism") lists."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.workflow_helpers import CORPUS, snakemake, write_config, write_corpus

pytestmark = pytest.mark.slow
# The last rules of the audio, text and feature stages: `--until` runs them and everything they
# need (a rule named here must not need another one named here, or it is cut off).
UNTIL = ("audio_summary", "graphs", "mean_pool", "km_targets")
# The files that hold absolute paths, by design: manifests (their root folder), the audio shard
# tables (inventory, converted, trimmed) and the rejects tables (the rejected files' paths).
ABSOLUTE = re.compile(r"results/tiny/(manifest/\w+\.tsv|audio/rejects\.tsv|"
                      r"audio/(inventory|converted/\w+|trimmed/\w+)/\d{3}(\.rejects)?\.tsv)")


def outputs(workdir: Path) -> dict[str, bytes]:
    """Every file under results/, by relative path, with the run's folder replaced by `<dir>`."""
    folder = str(workdir.resolve()).encode()
    files = {}
    for path in sorted((workdir / "results").rglob("*")):
        if path.is_file():
            key = path.relative_to(workdir).as_posix()
            data = path.read_bytes()
            if folder in data:
                assert ABSOLUTE.fullmatch(key), f"{key} holds the absolute path {folder}"
                data = data.replace(folder, b"<dir>")
            files[key] = data
    return files


def test_two_runs_with_different_cores_write_the_same_bytes(tmp_path, synth, monkeypatch):
    monkeypatch.setenv("W2VU_CONSOLE_EVERY", "0")  # every job's status on the console
    first = write_corpus(tmp_path / "first", synth)
    second = tmp_path / "second"
    shutil.copytree(first, second)
    for workdir in (first, second):
        write_config(workdir, {"audio": {"paths": [CORPUS]}, "text": ["text.txt"],
                               "splits": {"fractions": {"train": 0.7, "valid": 0.3}}},
                     audio={"shards": 1})
    with ThreadPoolExecutor(2) as pool:  # side by side: most of a run is waiting for job starts
        runs = [pool.submit(snakemake, first, "--until", *UNTIL),
                pool.submit(snakemake, second, "--cores", "1", "--until", *UNTIL)]
        console = runs[0].result().stderr
        runs[1].result()
    assert "w2vu extract [logs/tiny/extract/" in console, console
    a, b = outputs(first), outputs(second)
    assert sorted(a) == sorted(b)
    for made in ("text/fst/phn_to_words/HLG.fst", "audio/summary.tsv", "pca/78_pca_A.npy",
                 "precompute_pca78_cls8_mean_pooled/train.npy", "features/mfcc100/"):
        assert any(made in k for k in a), made
    differ = [k for k in a if a[k] != b[k]]
    assert not differ, f"{len(differ)} of {len(a)} files differ: {differ}"
