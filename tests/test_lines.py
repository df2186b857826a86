"""The one reader of line-aligned text files."""

from __future__ import annotations

import pytest

from w2vu.errors import W2vuError
from w2vu.io.lines import read_text_lines, read_token_lines


def test_blank_lines_stay_as_empty_utterances(tmp_path):
    (tmp_path / "t.txt").write_text("a b\n\n c \n", encoding="utf-8")
    assert read_token_lines(tmp_path / "t.txt", "labels") == [["a", "b"], [], ["c"]]


@pytest.mark.parametrize("content", [None, b"\xff\xfe bad"])
def test_missing_or_non_utf8_file_names_it_and_the_fix(tmp_path, content):
    path = tmp_path / "t.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(W2vuError, match=r"labels .*t\.txt: .*; rerun the labels step"):
        read_text_lines(path, "labels", "rerun the labels step")
