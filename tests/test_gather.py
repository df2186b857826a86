"""manifest, labels and the audio summary: order, label formats, counts that add up."""

from __future__ import annotations

import pytest

from w2vu.audio.gather import gather_split, summarize_language, words_to_letters, write_labels
from w2vu.audio.inventory import Entry, read_shard_list, write_shard_lists
from w2vu.errors import W2vuError
from w2vu.io.manifest import read_manifest, write_manifest
from w2vu.io.rejects import Reject, write_rejects


def test_words_to_letters_matches_fairseq():
    assert words_to_letters("hello  world") == "h e l l o | w o r l d |"
    assert words_to_letters("") == ""


def split_fixture(tmp_path):
    """Two shards of split train: keys b, a in shard 0 and c in shard 1; one convert reject."""
    entries = [Entry(key=k, path=f"/s/{k}.wav", split="train", transcript=w, phones=p)
               for k, w, p in [("b", "bee", "b iː"), ("a", "ay", "eɪ"), ("c", "see", "s iː"),
                               ("d", "", "")]]
    lists = tmp_path / "inv"
    (lists).mkdir()
    write_shard_lists(entries, 2, lists)
    shard_of = {e.key: i for i in range(2) for e in read_shard_list(lists / f"{i:03d}.tsv")}
    root = tmp_path / "trimmed" / "train"
    trimmed, converted, conv_rej, trim_rej = [], [], [], []
    for shard in range(2):
        keys = [k for k in "abc" if shard_of[k] == shard]
        write_manifest(root / f"{shard:03d}.tsv", root / f"{shard:03d}",
                       [(f"{k}.flac", 100 * (ord(k) - 96)) for k in keys])
        write_manifest(tmp_path / "conv" / "train" / f"{shard:03d}.tsv", tmp_path,
                       [(f"{k}.flac", 200) for k in keys])
        rejected = [Reject("/s/d.wav", "convert", "bad")] if shard_of["d"] == shard else []
        write_rejects(tmp_path / "conv" / "train" / f"{shard:03d}.rejects.tsv", rejected)
        write_rejects(root / f"{shard:03d}.rejects.tsv", [])
        trimmed.append(str(root / f"{shard:03d}.tsv"))
        converted.append(str(tmp_path / "conv" / "train" / f"{shard:03d}.tsv"))
        conv_rej.append(str(tmp_path / "conv" / "train" / f"{shard:03d}.rejects.tsv"))
        trim_rej.append(str(root / f"{shard:03d}.rejects.tsv"))
    write_rejects(lists / "rejects.tsv", [Reject("/s/e.wav", "inventory", "file not found")])
    return dict(lists=[str(lists / f"{i:03d}.tsv") for i in range(2)], trimmed=trimmed,
                converted=converted, conv_rej=conv_rej, trim_rej=trim_rej, root=root,
                inv_rej=str(lists / "rejects.tsv"))


def test_manifest_sorted_by_key_with_aligned_labels(tmp_path):
    f = split_fixture(tmp_path)
    assert gather_split(f["trimmed"], f["root"], tmp_path / "m" / "train.tsv") == 3
    manifest = read_manifest(tmp_path / "m" / "train.tsv")
    assert [rel.split("/")[1] for rel, _ in manifest.rows] == ["a.flac", "b.flac", "c.flac"]
    assert all(p.parent.parent == f["root"].resolve() for p in manifest.paths())
    write_labels(tmp_path / "m" / "train.tsv", f["lists"], "train", str(tmp_path / "m" / "train"))
    assert (tmp_path / "m" / "train.wrd").read_text() == "ay\nbee\nsee\n"
    assert (tmp_path / "m" / "train.given.phn").read_text() == "eɪ\nb iː\ns iː\n"
    assert (tmp_path / "m" / "train.ltr").read_text() == "a y |\nb e e |\ns e e |\n"


def test_summary_counts_add_up(tmp_path):
    f = split_fixture(tmp_path)
    summarize_language(inventory_rejects=f["inv_rej"], shard_lists=f["lists"],
                       converted=f["converted"], convert_rejects=f["conv_rej"],
                       trimmed=f["trimmed"], trim_rejects=f["trim_rej"],
                       out_rejects=tmp_path / "rejects.tsv", out_summary=tmp_path / "summary.tsv")
    lines = (tmp_path / "rejects.tsv").read_text().splitlines()
    assert len(lines) == 3  # header + inventory reject + convert reject
    header, *rows = (tmp_path / "summary.tsv").read_text().splitlines()
    values = {row.split("\t")[0]: dict(zip(header.split("\t"), row.split("\t"))) for row in rows}
    assert [(v["found"], v["kept"], v["rejected"]) for v in values.values()] == \
        [("4", "3", "1"), ("1", "0", "1")]
    assert list(values) == ["train", "(no split)"]  # found 5 = kept 3 + rejected 2, in the file


def test_no_usable_audio_is_a_clear_error(tmp_path):
    entries = [Entry(key="a", path="/s/a.wav", split="train")]
    write_shard_lists(entries, 1, tmp_path)
    write_rejects(tmp_path / "inv.tsv", [])
    write_manifest(tmp_path / "conv.tsv", tmp_path, [])
    write_manifest(tmp_path / "train" / "000.tsv", tmp_path, [])
    write_rejects(tmp_path / "train" / "000.rejects.tsv", [Reject("/s/a.wav", "convert", "bad")])
    write_rejects(tmp_path / "train" / "t.rejects.tsv", [])
    with pytest.raises(W2vuError, match="no usable audio: all 1 files were rejected"):
        summarize_language(inventory_rejects=str(tmp_path / "inv.tsv"),
                           shard_lists=[str(tmp_path / "000.tsv")],
                           converted=[str(tmp_path / "train" / "000.tsv")],
                           convert_rejects=[str(tmp_path / "train" / "000.rejects.tsv")],
                           trimmed=[str(tmp_path / "train" / "000.tsv")],
                           trim_rejects=[str(tmp_path / "train" / "t.rejects.tsv")],
                           out_rejects=tmp_path / "r.tsv", out_summary=tmp_path / "s.tsv")
