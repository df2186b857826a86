"""Kaldi export/import: data dir read back through kaldi-io, dict dir, label round trip, errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from w2vu.errors import W2vuError
from w2vu.io.features import write_features
from w2vu.selftrain.kaldi_export import export_kaldi, kaldi_io_module, utt_id
from w2vu.selftrain.kaldi_import import import_kaldi_text

PHONES = ("AA", "B", "K", "IY")


def write_dict(path, symbols=(*PHONES, "<SIL>")):
    path.write_text("".join(f"{s} {10 - i}\n" for i, s in enumerate(symbols)), encoding="utf-8")
    return path


@pytest.fixture
def inputs(tmp_path):
    """5 utterances: #2 has no frames, #3 an empty label line, #4 a <SIL> in its labels."""
    rng = np.random.default_rng(0)
    lengths = (7, 3, 0, 5, 4)
    mats = [rng.standard_normal((n, 6)).astype(np.float32) for n in lengths]
    prefix = tmp_path / "in" / "train"
    prefix.parent.mkdir()
    write_features(prefix, mats, dim=6)
    labels = prefix.parent / "train.txt"
    labels.write_text("AA B K\nIY\nB\n\nK <SIL> AA\n", encoding="utf-8")
    refs = prefix.parent / "train.phn"
    refs.write_text("AA B K K\nIY IY\nB\nAA\n<SIL> K AA <SIL>\n", encoding="utf-8")
    dictionary = write_dict(prefix.parent / "dict.phn.txt")
    return prefix, labels, refs, dictionary, mats


def read_table(path):
    return [line.split(" ", 1) if " " in line else [line, ""]
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_reads_back_through_kaldi_io(inputs, tmp_path, caplog):
    prefix, labels, refs, dictionary, mats = inputs
    out = tmp_path / "kaldi"
    with caplog.at_level(logging.INFO):
        report = export_kaldi(prefix, labels, dictionary, out, references_phn=refs)
    assert (report.utterances, report.written, report.no_frames) == (5, 4, 1)
    assert (report.with_text, report.empty_labels, report.references) == (3, 1, 4)
    assert (report.frames, report.dim, report.phones) == (19, 6, 4)
    assert "5 utterances = 4 written (3 with text + 1 with an empty" in caplog.text

    kaldi_io = kaldi_io_module()
    back = list(kaldi_io.read_mat_scp(str(out / "data" / "feats.scp")))
    assert [k for k, _ in back] == [utt_id(i) for i in (0, 1, 3, 4)]
    for (_, mat), index in zip(back, (0, 1, 3, 4)):
        assert mat.dtype == np.float32
        np.testing.assert_array_equal(mat, mats[index])
    # the whole ark, read sequentially, holds the same keys (offsets agree with the stream)
    assert [k for k, _ in kaldi_io.read_mat_ark(str(out / "data" / "feats.ark"))] == \
        [k for k, _ in back]
    for _key, rx in read_table(out / "data" / "feats.scp"):
        path, offset = rx.rsplit(":", 1)
        assert path == str(out.absolute() / "data" / "feats.ark") and offset.isdigit()

    assert read_table(out / "data" / "text") == [
        [utt_id(0), "AA B K"], [utt_id(1), "IY"], [utt_id(4), "K <SIL> AA"]]
    identity = [[utt_id(i), utt_id(i)] for i in (0, 1, 3, 4)]
    assert read_table(out / "data" / "utt2spk") == identity
    assert read_table(out / "data" / "spk2utt") == identity
    assert read_table(out / "data_gt" / "text") == [
        [utt_id(0), "AA B K K"], [utt_id(1), "IY IY"], [utt_id(3), "AA"], [utt_id(4), "K AA"]]
    assert (out / "data_gt" / "feats.scp").read_bytes() == (out / "data" / "feats.scp").read_bytes()

    d = out / "dict"
    assert (d / "lexicon.txt").read_text().splitlines() == [
        "SIL SIL", "<SIL> SIL", "<UNK> SIL", "AA AA", "B B", "K K", "IY IY"]
    assert (d / "silence_phones.txt").read_text() == "SIL\n"
    assert (d / "optional_silence.txt").read_text() == "SIL\n"
    assert (d / "nonsilence_phones.txt").read_text().split() == list(PHONES)
    assert (d / "extra_questions.txt").read_text() == "SIL\nAA B K IY\n"
    readme = (out / "README.txt").read_text()
    assert "--position-dependent-phones false" in readme
    assert "--num_sil_states 3 --num_nonsil_states 1" in readme
    assert "train_subset_lgbeam.sh" in readme and "compute_cmvn_stats.sh" in readme
    assert sorted(os.listdir(tmp_path)) == ["in", "kaldi"]  # no temporaries left


def test_export_without_references_and_with_fairseq_specials(inputs, tmp_path):
    prefix, labels, _, _, _ = inputs
    dictionary = write_dict(tmp_path / "d.txt", ("<s>", "<pad>", "</s>", "<unk>", *PHONES))
    # read_fairseq_dict rejects the specials in the file (it adds them itself)
    with pytest.raises(W2vuError, match="occur twice"):
        export_kaldi(prefix, labels, dictionary, tmp_path / "k")
    dictionary = write_dict(tmp_path / "d.txt", PHONES)  # no <SIL> in the file
    report = export_kaldi(prefix, labels, dictionary, tmp_path / "k")
    assert report.references is None and not (tmp_path / "k" / "data_gt").exists()
    assert (tmp_path / "k" / "dict" / "nonsilence_phones.txt").read_text().split() == list(PHONES)


def test_import_round_trip(tmp_path, caplog):
    text = tmp_path / "text"
    text.write_text(f"{utt_id(0)} SIL AA B SIL\n{utt_id(3)} K <UNK> IY\n\n{utt_id(1)}\n"
                    f"{utt_id(5)} !SIL <SIL> B\n", encoding="utf-8")
    out = tmp_path / "round1" / "train.txt"
    with caplog.at_level(logging.INFO):
        report = import_kaldi_text(text, 7, out)
    assert out.read_text().split("\n") == ["AA B", "", "", "K IY", "", "B", "", ""]
    assert (report.lines, report.from_kaldi, report.missing, report.stripped) == (7, 4, 3, 5)
    assert "7 lines = 4 from Kaldi + 3 missing" in caplog.text


def test_export_then_import_gives_back_the_labels(inputs, tmp_path):
    prefix, labels, _, dictionary, _ = inputs
    export_kaldi(prefix, labels, dictionary, tmp_path / "k")
    out = tmp_path / "back.txt"
    import_kaldi_text(tmp_path / "k" / "data" / "text", 5, out, dictionary=dictionary)
    assert out.read_text() == "AA B K\nIY\n\n\nK AA\n"


@pytest.mark.parametrize("line, message", [
    ("utt12 AA", "not an utterance id"),
    ("utt0000000009 AA", "beyond the split's 5 utterances"),
    ("utt0000000001 AA\nutt0000000001 B", "occurs twice"),
    ("utt0000000001 AA ZZ", r"words \['ZZ'\] are not phones"),
    ("utt0000000001 12 7", "int2sym"),
])
def test_import_errors_name_the_line(tmp_path, line, message):
    text = tmp_path / "text"
    text.write_text(line + "\n", encoding="utf-8")
    dictionary = write_dict(tmp_path / "dict.phn.txt")
    with pytest.raises(W2vuError, match=message) as err:
        import_kaldi_text(text, 5, tmp_path / "out.txt", dictionary=dictionary)
    assert f"{text}:{line.count(chr(10)) + 1}" in str(err.value)
    assert not (tmp_path / "out.txt").exists()


def test_export_errors(inputs, tmp_path):
    prefix, labels, refs, dictionary, _ = inputs
    short = tmp_path / "short.txt"
    short.write_text("AA\nB\n", encoding="utf-8")
    with pytest.raises(W2vuError, match="has 2 lines but .* lists 5 utterances"):
        export_kaldi(prefix, short, dictionary, tmp_path / "k")
    with pytest.raises(W2vuError, match="references"):
        export_kaldi(prefix, labels, dictionary, tmp_path / "k", references_phn=short)
    bad = tmp_path / "bad.txt"
    bad.write_text("AA\nB\nB\n\nQQ\n", encoding="utf-8")
    with pytest.raises(W2vuError, match=r"bad.txt:5: phones \['QQ'\]"):
        export_kaldi(prefix, bad, dictionary, tmp_path / "k")
    clash = write_dict(tmp_path / "clash.txt", ("AA", "SIL"))
    with pytest.raises(W2vuError, match="clash"):
        export_kaldi(prefix, labels, clash, tmp_path / "k")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\nB\n\n\n", encoding="utf-8")  # only the frameless utterance has a label
    with pytest.raises(W2vuError, match="nothing to train on"):
        export_kaldi(prefix, empty, dictionary, tmp_path / "k")
    with pytest.raises(W2vuError, match="whitespace"):
        export_kaldi(prefix, labels, dictionary, tmp_path / "my export")
    with pytest.raises(W2vuError, match="inside the export folder"):
        export_kaldi(prefix, labels, dictionary, prefix.parent)
    assert not (tmp_path / "k").exists() and not (tmp_path / "my export").exists()


def test_failed_export_keeps_the_previous_one(inputs, tmp_path, monkeypatch):
    prefix, labels, _, dictionary, _ = inputs
    out = tmp_path / "k"
    export_kaldi(prefix, labels, dictionary, out)
    before = (out / "data" / "feats.scp").read_bytes()
    import w2vu.selftrain.kaldi_export as ke

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ke, "_write_dict_dir", broken)
    with pytest.raises(RuntimeError):
        export_kaldi(prefix, labels, dictionary, out)
    assert (out / "data" / "feats.scp").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["in", "k"]


def test_kaldi_io_import_is_quiet_and_leaves_the_environment(tmp_path):
    code = ("import os; before = dict(os.environ); "
            "from w2vu.selftrain.kaldi_export import kaldi_io_module; m = kaldi_io_module(); "
            "assert m.write_mat; assert dict(os.environ) == before, 'environment changed'")
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr and done.stderr == ""
