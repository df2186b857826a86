"""demo-corpus: deterministic under the seed, disjoint halves, references for every utterance."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import soundfile as sf

from w2vu.demo.sentences import book_text, reference_words, split_sentences
from w2vu.io.tables import read_table


def build(root, seed: int):
    """Build through the CLI: espeak-ng carries hidden state from one utterance to the next, so a
    corpus is reproducible when built by its own process, as the workflow does."""
    subprocess.run([sys.executable, "-m", "w2vu", "demo-corpus", "--out-dir", str(root / "wav"),
                    "--out-table", str(root / "audio.tsv"), "--out-text", str(root / "text.txt"),
                    "--minutes", "0.3", "--seed", str(seed)], check=True, capture_output=True)
    digest = hashlib.sha256()  # of the decoded audio: Ogg streams get random serial numbers
    for path in sorted((root / "wav").rglob("*.*")):
        digest.update(path.name.encode() + sf.read(path, dtype="int16")[0].tobytes())
    return read_table(root / "audio.tsv"), (root / "text.txt").read_text(), digest.hexdigest()


def test_same_seed_same_corpus(tmp_path):
    first = build(tmp_path / "a", 1)
    assert build(tmp_path / "b", 1) == first
    assert build(tmp_path / "c", 2)[2] != first[2]


def test_halves_are_disjoint_and_referenced(tmp_path):
    rows, text, _ = build(tmp_path, 0)
    spoken = {row["transcript"] for row in rows}
    unpaired = {reference_words(line) for line in text.splitlines()}
    assert spoken and not spoken & unpaired
    assert len({row["speaker"] for row in rows}) >= 3
    assert all(row["phones"] and row["transcript"] for row in rows)
    assert {row["path"].rsplit(".", 1)[1] for row in rows} == {"wav", "flac", "ogg"}


def test_sentences_are_clean():
    sentences = split_sentences(book_text())
    assert len(sentences) > 3000
    assert not any("[Illustration" in s or "_" in s or "“" in s for s in sentences)
