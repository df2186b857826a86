"""inventory: keys, splits (hash, lists, column), shards, references and inventory rejects."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from w2vu.audio.inventory import (
    SplitRule,
    build_inventory,
    read_shard_list,
    shard_list_path,
    split_by_fraction,
)
from w2vu.errors import W2vuError
from w2vu.io.rejects import read_rejects

EXTENSIONS = ["wav", "flac"]
HASH = SplitRule("hash", ("train", "valid"), fractions=(0.8, 0.2))


def make_files(root: Path, names: list[str]) -> list[Path]:
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".wav", ".flac"):
            sf.write(path, np.zeros(800, np.float32), 16000)
        else:
            path.write_text("not audio\n")
        paths.append(path)
    return paths


def inventory(tmp_path: Path, **kw) -> tuple[dict, list, list]:
    args = dict(patterns=[], table=None, references=None, extensions=EXTENSIONS, rule=HASH,
                shards=3, out_dir=tmp_path / "inv", out_rejects=tmp_path / "inv" / "rejects.tsv")
    args.update(kw)
    counts = build_inventory(**args)
    entries = [e for i in range(args["shards"])
               for e in read_shard_list(shard_list_path(args["out_dir"], i))]
    return counts, entries, read_rejects(args["out_rejects"])


def test_hash_split_is_deterministic_and_follows_fractions():
    keys = [f"spk{i % 7}/utt{i}" for i in range(5000)]
    splits = Counter(split_by_fraction(k, ("train", "valid", "test"), (0.8, 0.1, 0.1))
                     for k in keys)
    assert abs(splits["train"] / 5000 - 0.8) < 0.03 and abs(splits["test"] / 5000 - 0.1) < 0.02
    assert [split_by_fraction(k, ("a", "b"), (1, 1)) for k in keys[:50]] == \
        [split_by_fraction(k, ("a", "b"), (1, 1)) for k in keys[:50]]


def test_folder_scan_keys_and_odd_names(tmp_path):
    names = ["a/one.wav", "a/two.flac", "b/with space.wav", "b/quote's \"x\" $(ls);.wav",
             "b/README.txt", "c/.hidden.wav"]
    make_files(tmp_path / "corpus", names)
    counts, entries, rejects = inventory(tmp_path, patterns=[str(tmp_path / "corpus")])
    keys = sorted(e.key for e in entries)
    assert keys == sorted(["a/one", "a/two", "b/with space", "b/quote's \"x\" $(ls);"])
    assert sum(counts.values()) == 4 and rejects == []


def test_a_file_name_that_is_not_utf8_is_rejected_and_the_others_go_on(tmp_path):
    make_files(tmp_path / "corpus", ["good.wav", "also good.flac"])
    sf.write(bytes(tmp_path / "corpus") + b"/caf\xe9.flac", np.zeros(800, np.float32), 16000)
    counts, entries, rejects = inventory(tmp_path, patterns=[str(tmp_path / "corpus")])
    assert sorted(e.key for e in entries) == ["also good", "good"]
    assert [(r.path.endswith("caf\\xe9.flac"), r.stage) for r in rejects] == [(True, "inventory")]
    assert "not valid UTF-8" in rejects[0].reason


def test_adding_a_file_changes_only_its_shard(tmp_path):
    make_files(tmp_path / "c", [f"u{i}.wav" for i in range(30)])
    inventory(tmp_path, patterns=[str(tmp_path / "c")])
    before = [shard_list_path(tmp_path / "inv", i).read_text() for i in range(3)]
    make_files(tmp_path / "c", ["new.wav"])
    inventory(tmp_path, patterns=[str(tmp_path / "c")])
    after = [shard_list_path(tmp_path / "inv", i).read_text() for i in range(3)]
    assert sum(b != a for b, a in zip(before, after)) == 1


def test_collisions_missing_and_duplicate_rows_are_rejected(tmp_path):
    make_files(tmp_path / "c", ["x.wav", "x.flac", "y.wav"])
    table = tmp_path / "audio.tsv"
    table.write_text("path\tspeaker\n"
                     "c/x.wav\ts1\nc/x.flac\ts1\nc/y.wav\ts2\nc/y.wav\ts2\nc/gone.wav\ts3\n")
    counts, entries, rejects = inventory(tmp_path, table=str(table))
    assert sum(counts.values()) + len(rejects) == 5
    reasons = sorted(r.reason.split(" ")[0] for r in rejects)
    assert reasons == ["file", "listed", "same"]
    assert {e.speaker for e in entries} == {"s1", "s2"}


def test_split_lists_and_unlisted_files(tmp_path):
    make_files(tmp_path / "c", ["a.wav", "b.wav", "c.wav"])
    (tmp_path / "train.lst").write_text("c/a.wav\n")
    (tmp_path / "valid.lst").write_text("c/b\n")
    rule = SplitRule("lists", ("train", "valid"), lists=(str(tmp_path / "train.lst"),
                                                        str(tmp_path / "valid.lst")))
    counts, entries, rejects = inventory(tmp_path, patterns=[str(tmp_path / "c")], rule=rule)
    assert counts == {"train": 1, "valid": 1}
    assert [r.reason for r in rejects] == ["not in any split list"]


def test_split_column_and_references(tmp_path):
    make_files(tmp_path / "c", ["a.wav", "b.wav", "c.wav"])
    table = tmp_path / "audio.tsv"
    table.write_text("path\tsplit\nc/a.wav\ttrain\nc/b.wav\ttest\nc/c.wav\tdev\n")
    refs = tmp_path / "refs.tsv"
    refs.write_text("path\ttranscript\tphones\nc/a.wav\thello world\th ə l oʊ\n")
    rule = SplitRule("column", ("train", "test"))
    counts, entries, rejects = inventory(tmp_path, table=str(table), references=str(refs),
                                         rule=rule)
    assert counts == {"train": 1, "test": 1}
    assert "'dev' is not one of" in rejects[0].reason
    a = next(e for e in entries if e.key == "a")
    assert (a.transcript, a.phones) == ("hello world", "h ə l oʊ")


def test_no_audio_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(W2vuError, match="no audio found"):
        inventory(tmp_path, patterns=[str(tmp_path / "empty")])
    with pytest.raises(W2vuError, match="does not exist"):
        inventory(tmp_path, patterns=[str(tmp_path / "nowhere")])
