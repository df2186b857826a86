"""Tests for Viterbi generation, PER/WER scoring, scores.tsv and the linear CTC probe (§3.2)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_gan_trainer import DIM, LENGTHS, PHONES, _config, data  # noqa: F401 - fixture
from w2vu.errors import W2vuError
from w2vu.eval.metrics import Score, align, confusions, edit_distance, score_lines
from w2vu.eval.probe import load_probe, probe_per, train_probe
from w2vu.eval.score import (
    SCORE_COLUMNS,
    append_scores,
    constant_sentence,
    constant_sentence_baseline,
    most_frequent_phone,
    most_frequent_phone_baseline,
    score_files,
)
from w2vu.gan.baseline import random_checkpoint
from w2vu.gan.generate import generate, output_paths, viterbi
from w2vu.gan.trainer import CHECKPOINT_BEST, TrainPaths, train
from w2vu.io.dictionary import load_phone_dictionary
from w2vu.io.features import open_features, write_features

# fairseq order: <s> <pad> </s> <unk> p0..p10 <SIL>  ->  p0 = 4, p1 = 5, <SIL> = 15
SIL_ID = 4 + len(PHONES)


def _logits(ids: list[int], vocab: int = SIL_ID + 1) -> torch.Tensor:
    out = torch.full((len(ids), vocab), -5.0)
    out[torch.arange(len(ids)), torch.tensor(ids)] = 5.0
    return out


def test_viterbi_merges_then_drops() -> None:
    seq = [4, 4, 0, 5, 5, SIL_ID, SIL_ID, 5, 3, 4, 1, 1, 6]
    frames, phones, units = viterbi(_logits(seq), SIL_ID)
    assert frames.tolist() == seq
    # merge repeats first: "5 SIL 5" stays two 5s; blank/specials/SIL then disappear
    assert phones == [4, 5, 5, 4, 6]
    assert units == [4, 5, SIL_ID, 5, 4, 6]
    _, phones, units = viterbi(_logits([SIL_ID, 0, 2]), SIL_ID)
    assert phones == [] and units == [SIL_ID]


@pytest.fixture(scope="module")
def trained(data: TrainPaths, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("run")
    train(_config(max_updates=3, validate_every=3, checkpoint_every=3), data, out)
    return out / CHECKPOINT_BEST


@pytest.mark.parametrize("stride", [None, 2])
def test_generate_files_line_aligned(data: TrainPaths, trained: Path, tmp_path: Path,  # noqa: F811
                                     stride: int | None) -> None:
    hyps = generate(trained, data.features, data.dictionary, tmp_path, "train",
                    decode_stride=stride, write_emissions=True, write_frames=True, device="cpu")
    paths = output_paths(tmp_path, "train")
    txt = paths["txt"].read_text().split("\n")
    units = paths["units"].read_text().split("\n")
    frames = paths["frames"].read_text().split("\n")
    assert len(txt) == len(units) == len(frames) == len(LENGTHS) + 1 and txt[-1] == ""
    short = [i for i, n in enumerate(LENGTHS) if n < 3]
    assert short and all(txt[i] == units[i] == frames[i] == "" for i in short)
    vocab = load_phone_dictionary(data.dictionary).symbols
    for i, n in enumerate(LENGTHS):
        assert txt[i].split() == [p for p in units[i].split() if p != "<SIL>"]
        assert set(txt[i].split()) <= set(PHONES)
        assert txt[i].split() == hyps.phones[i]
        if n >= 3:
            ids = [int(t) for t in frames[i].split()]
            expected = n // (stride or 1) + 1  # kernel 4, padding 2
            assert len(ids) == expected, (i, n, len(ids))
            merged = [vocab[k] for k, _ in _groups(ids) if 4 <= k]
            assert merged == units[i].split()
    emis = open_features(paths["emissions"])
    assert len(emis) == len(LENGTHS)
    for i in range(len(LENGTHS)):
        rows = np.asarray(emis[i])
        assert rows.shape == (len(hyps.frame_ids[i]), len(vocab))
        if len(rows):
            assert np.allclose(np.exp(rows).sum(-1), 1.0, atol=1e-4)
            assert rows.argmax(-1).tolist() == hyps.frame_ids[i].tolist()


def _groups(ids: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for k in ids:
        if out and out[-1][0] == k:
            out[-1] = (k, out[-1][1] + 1)
        else:
            out.append((k, 1))
    return out


def test_generate_user_errors(data: TrainPaths, trained: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(W2vuError, match="not found"):
        generate(tmp_path / "none.pt", data.features, data.dictionary, tmp_path, "x")
    with pytest.raises(W2vuError, match="variant"):
        generate(trained, data.features, data.dictionary, tmp_path, "x", variant=2)
    other = tmp_path / "dict.phn.txt"
    other.write_text("a 1\nb 1\n")
    with pytest.raises(W2vuError, match="dict.phn.txt"):
        generate(trained, data.features, other, tmp_path, "x")


def test_random_baseline_is_seeded(data: TrainPaths, tmp_path: Path) -> None:  # noqa: F811
    outs = []
    for name in ("a", "b"):
        ckpt = tmp_path / name / "best.pt"
        random_checkpoint(ckpt, data.dictionary, data.features, seed=7, discriminator_dim=16)
        generate(ckpt, data.features, data.dictionary, tmp_path / name, "train", device="cpu")
        outs.append((tmp_path / name / "train.txt").read_text())
    assert outs[0] == outs[1] and outs[0].strip()
    score = score_files(tmp_path / "a" / "train.txt", data.valid_phn, "per")
    assert score.ref_len > 0 and score.rate > 0.5


def test_per_wer_hand_examples(tmp_path: Path) -> None:
    s = score_lines([["a", "b", "c"], ["x"], ["y"]], [["a", "c"], [], ["y", "z"]])
    assert (s.errors, s.ref_len, s.utterances, s.skipped) == (2, 4, 2, 1)
    assert s.rate == pytest.approx(0.5)
    (tmp_path / "h.txt").write_text("a <SIL> b\n\nc\n")
    (tmp_path / "r.phn").write_text("a b <SIL>\n<SIL>\nd e\n")
    per = score_files(tmp_path / "h.txt", tmp_path / "r.phn", "per")
    assert (per.errors, per.ref_len, per.skipped) == (2, 4, 1)  # SIL-only ref line is empty
    (tmp_path / "h.wrd").write_text("the cat sat\nhello\n")
    (tmp_path / "r.wrd").write_text("the cat sat down\n\n")
    wer = score_files(tmp_path / "h.wrd", tmp_path / "r.wrd", "wer")
    assert (wer.errors, wer.ref_len, wer.skipped) == (1, 4, 1)
    (tmp_path / "short.txt").write_text("a\n")
    with pytest.raises(W2vuError, match="line-aligned"):
        score_files(tmp_path / "short.txt", tmp_path / "r.phn")
    assert math.isnan(score_lines([[]], [[]]).rate)


def test_alignment_and_confusions_by_hand() -> None:
    assert align(["a", "b", "c"], ["a", "x", "c", "d"]) == [("a", "a"), ("b", "x"), ("c", "c"),
                                                           (None, "d")]
    assert align(["a", "b"], []) == [("a", None), ("b", None)]
    for ref, hyp in ((list("kitten"), list("sitting")), (list("abc"), list("cab"))):
        pairs = align(ref, hyp)  # a minimal alignment: its edits are the edit distance
        assert sum(r != h for r, h in pairs) == edit_distance(ref, hyp)
        assert [r for r, _ in pairs if r] == ref and [h for _, h in pairs if h] == hyp
    # a consistent wrong permutation shows as one dominant confusion per phone
    table = confusions([["b", "a", "c"], ["b", "a"], ["c"]],
                       [["a", "b", "c"], ["a", "b"], ["c", "d"]])
    assert table["a"] == {"b": 2} and table["b"] == {"a": 2} and table["c"] == {"c": 2}
    assert table["d"] == {None: 1} and None not in table


def test_most_frequent_phone_baseline(tmp_path: Path) -> None:
    (tmp_path / "lm.txt").write_text("<SIL> a b <SIL>\nb c <SIL>\nb\n")
    (tmp_path / "r.phn").write_text("b b a\n\nc\n")
    assert most_frequent_phone(tmp_path / "lm.txt") == "b"
    s = most_frequent_phone_baseline(tmp_path / "lm.txt", tmp_path / "r.phn", tmp_path / "h.txt")
    assert (tmp_path / "h.txt").read_text() == "b\nb\nb\n"
    assert (s.errors, s.ref_len, s.skipped) == (3, 4, 1)


def test_constant_sentence_baseline_says_the_texts_best_single_sentence(tmp_path: Path) -> None:
    """Of the text's commonest sentences, the one with the fewest edits against the text: here
    `a b c` (4 edits against the five lines) beats the commonest line `a b` (5 edits); <SIL> is
    left out before counting, and the hypothesis is the same line for every utterance."""
    (tmp_path / "lm.txt").write_text("a b\n<SIL> a b <SIL>\na b c d\na b c d\na b c\n\n")
    assert constant_sentence(tmp_path / "lm.txt") == ["a", "b", "c"]
    (tmp_path / "r.phn").write_text("a b c\n\nx y\n")
    s = constant_sentence_baseline(tmp_path / "lm.txt", tmp_path / "r.phn", tmp_path / "h.txt")
    assert (tmp_path / "h.txt").read_text() == "a b c\n" * 3
    assert (s.errors, s.ref_len, s.skipped) == (3, 5, 1)
    (tmp_path / "words.txt").write_text("one two\n" + "one two three\n" * 3 + "four\n")
    (tmp_path / "r.wrd").write_text("one two three\nfive\n")
    s = constant_sentence_baseline(tmp_path / "words.txt", tmp_path / "r.wrd", tmp_path / "w.txt",
                                   metric="wer")
    assert (tmp_path / "w.txt").read_text() == "one two three\n" * 2
    assert (s.errors, s.ref_len) == (3, 4)  # the second line: one substitution, two insertions
    (tmp_path / "sil.txt").write_text("<SIL>\n\n")
    with pytest.raises(W2vuError, match="no tokens"):
        constant_sentence(tmp_path / "sil.txt")


def test_constant_sentence_tries_sentence_beginnings(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The best constant can be no sentence of the text: `x y` (7 edits against these five lines)
    begins three sentences and is none; with one sentence tried (`q`, 9 edits) only the
    beginnings find it."""
    import w2vu.eval.score as score

    monkeypatch.setattr(score, "CONSTANT_SENTENCES", 1)
    (tmp_path / "lm.txt").write_text("q\nx y z1\nq\nx y z2\nx y z3\n")
    assert constant_sentence(tmp_path / "lm.txt") == ["x", "y"]


def test_scores_tsv_replaces_rows(tmp_path: Path) -> None:
    tsv = tmp_path / "scores.tsv"
    append_scores(tsv, "gan", "valid", "per", Score(5, 10, 1, 0))
    append_scores(tsv, "baseline", "valid", "per", Score(9, 10, 1, 0))
    append_scores(tsv, "gan", "valid", "per", Score(3, 10, 1, 0))
    append_scores(tsv, "gan", "test", "per", Score(4, 8, 1, 0))
    with open(tsv) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert tuple(rows[0]) == SCORE_COLUMNS
    assert [(r["stage"], r["split"], r["errors"], r["rate"]) for r in rows] == [
        ("gan", "valid", "3", "0.3"), ("baseline", "valid", "9", "0.9"),
        ("gan", "test", "4", "0.5")]


def test_probe_learns_separable_clusters(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    phones = [f"q{i}" for i in range(6)]
    (tmp_path / "dict.phn.txt").write_text("".join(f"{p} 1\n" for p in phones))
    centers = rng.standard_normal((len(phones), 16)).astype(np.float32) * 4
    for split, count in (("train", 60), ("valid", 15)):
        utts, refs = [], []
        for _ in range(count):
            seq = rng.integers(0, len(phones), size=rng.integers(2, 6))
            seq = seq[np.r_[True, seq[1:] != seq[:-1]]]  # CTC needs no blank between repeats
            frames = [centers[k] + 0.3 * rng.standard_normal((rng.integers(3, 6), 16))
                      for k in seq]
            utts.append(np.concatenate(frames).astype(np.float32))
            refs.append(" ".join(["<SIL>"] + [phones[k] for k in seq]))
        write_features(tmp_path / split, utts)
        (tmp_path / f"{split}.phn").write_text("\n".join(refs) + "\n")
    probe = train_probe(tmp_path / "train", tmp_path / "train.phn", tmp_path / "dict.phn.txt",
                        steps=120, batch_size=16, lr=2e-2, seed=0,
                        out_path=tmp_path / "probe.pt")
    assert torch.equal(load_probe(tmp_path / "probe.pt").weight, probe.weight)
    s = probe_per(probe, tmp_path / "valid", tmp_path / "valid.phn",
                  tmp_path / "dict.phn.txt", out_path=tmp_path / "valid.txt")
    assert s.rate < 0.1, s
    assert len((tmp_path / "valid.txt").read_text().splitlines()) == 15
    a, b = (train_probe(tmp_path / "train", tmp_path / "train.phn", tmp_path / "dict.phn.txt",
                        steps=5, seed=3) for _ in range(2))
    assert torch.equal(a.weight, b.weight)
