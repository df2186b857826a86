"""Stage `lm`: the workflow's LM step, through w2vu's estimator or a configured lmplz binary."""

from __future__ import annotations

import pytest

from devkit.lmplz import LmplzUnavailable, lmplz_binary
from w2vu.errors import W2vuError
from w2vu.text.arpa import arpa_counts
from w2vu.text.lm import build_lm

PHONES = ["<SIL> h ə l oʊ <SIL> w ɜː l d <SIL>", "<SIL> ð ə k æ t <SIL>",
          "<SIL> h ə l oʊ <SIL> k æ t <SIL>", "<SIL> w ɜː l d <SIL> ð ə w ɜː l d <SIL>"] * 5


def test_estimator_and_lmplz_give_the_same_model(tmp_path):
    text = tmp_path / "phones.txt"
    text.write_text("\n".join(PHONES) + "\n")
    ours = build_lm(text, 4, tmp_path / "ours.arpa")
    assert ours == arpa_counts(tmp_path / "ours.arpa") and len(ours) == 4
    try:
        binary = lmplz_binary()
    except LmplzUnavailable as e:
        pytest.skip(f"lmplz unavailable: {e}")
    theirs = build_lm(text, 4, tmp_path / "lmplz.arpa", lmplz=str(binary))
    assert theirs == ours
    assert (tmp_path / "lmplz.arpa").read_text() == (tmp_path / "ours.arpa").read_text()


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(W2vuError, match="missing or empty"):
        build_lm(tmp_path / "none.txt", 4, tmp_path / "x.arpa")
    text = tmp_path / "t.txt"
    text.write_text("a b c\n")
    with pytest.raises(W2vuError, match="cannot run lmplz"):
        build_lm(text, 3, tmp_path / "x.arpa", lmplz=str(tmp_path / "no-lmplz"))
    assert not (tmp_path / "x.arpa").exists()
