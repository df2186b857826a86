"""A probe that cannot run on the data leaves scores.tsv with the stages that did run and the probe
marked failed with its reason (issue 14, item 10), through the commands the workflow runs."""

from __future__ import annotations

import csv

import numpy as np

from w2vu.cli import main
from w2vu.io.failed import failure_reason
from w2vu.io.features import write_features


def test_a_failed_probe_is_a_failed_row_and_the_other_stages_are_scored(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "dict.phn.txt").write_text("a 3\nb 2\n<SIL> 0\n")
    for split in ("train", "valid"):
        write_features(tmp_path / split, [rng.standard_normal((6, 4)).astype(np.float32)] * 2)
    (tmp_path / "train.phn").write_text("\n\n")  # no utterance has phones: the probe cannot learn
    (tmp_path / "valid.phn").write_text("a b\nb\n")
    (tmp_path / "gan.txt").write_text("a b\na\n")
    common = ["--dictionary", str(tmp_path / "dict.phn.txt"), "--note-failure"]

    assert main(["probe-train", "--features", str(tmp_path / "train"), "--phn",
                 str(tmp_path / "train.phn"), "--out", str(tmp_path / "probe.pt"), "--steps",
                 "2", *common]) == 0
    reason = failure_reason(tmp_path / "probe.pt")
    assert reason.startswith("probe-train: ") and "no utterance has both phones" in reason
    assert "2 of 2 have no phones" in reason
    assert main(["probe-decode", "--probe", str(tmp_path / "probe.pt"), "--features",
                 str(tmp_path / "valid"), "--phn", str(tmp_path / "valid.phn"), "--out",
                 str(tmp_path / "probe.txt"), *common]) == 0
    assert failure_reason(tmp_path / "probe.txt") == reason
    # Without --note-failure the same step is the usual one-line error (exit status 2).
    assert main(["probe-train", "--features", str(tmp_path / "train"), "--phn",
                 str(tmp_path / "train.phn"), "--out", str(tmp_path / "other.pt"),
                 "--dictionary", str(tmp_path / "dict.phn.txt")]) == 2
    assert not (tmp_path / "other.pt").exists()

    valid = str(tmp_path / "valid.phn")
    assert main(["score", "--row", "gan_viterbi", "valid", "per", str(tmp_path / "gan.txt"), valid,
                 "--row", "probe_w2vu1", "valid", "per", str(tmp_path / "probe.txt"), valid,
                 "--out", str(tmp_path / "scores.tsv")]) == 0
    with open(tmp_path / "scores.tsv", encoding="utf-8") as f:
        rows = {r["stage"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert (rows["gan_viterbi"]["errors"], rows["gan_viterbi"]["rate"]) == ("1", "0.333333")
    assert (rows["probe_w2vu1"]["rate"], rows["probe_w2vu1"]["note"]) == ("failed", reason)
