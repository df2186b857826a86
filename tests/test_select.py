"""Tests for unsupervised GAN run selection (reference §3.1) on hand-written metrics.tsv files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from w2vu.errors import W2vuError
from w2vu.gan.select import read_run_info, select_run, write_run_info
from w2vu.gan.trainer import METRIC_COLUMNS
from w2vu.train.metrics_table import METRICS


def _row(update: int, lm_ppl: float, usage: float, out_len: float,
         weighted: float | None = None) -> dict[str, float]:
    """One trainer-shaped row; weighted defaults to lm_ppl / usage² as the trainer computes it."""
    if weighted is None:
        weighted = lm_ppl / usage**2 if usage > 0 else math.inf
    return {"update": update, "d_loss": 0.7, "g_loss": 0.9, "grad_pen": 0.1, "code_ppl": 20.0,
            "vocab_usage": usage, "lm_ppl": lm_ppl, "out_len": out_len, "len_ratio": 1.0,
            "weighted_lm_ppl": weighted, "per": math.nan}


def _write_run(root: Path, name: str, rows: list[dict[str, float]] | None,
               params: dict | None = None, seed: int = 0) -> Path:
    run = root / name
    run.mkdir()
    if rows is not None:
        lines = ["\t".join(METRIC_COLUMNS)]
        lines += ["\t".join(str(r[c]) for c in METRIC_COLUMNS) for r in rows]
        (run / METRICS).write_text("\n".join(lines) + "\n")
    if params is not None or seed >= 0:
        write_run_info(run, params or {"code_penalty": 4.0, "gradient_penalty": 1.5,
                                       "smoothness": 0.5, "seed": seed})
    return run


@pytest.fixture()
def sweep(tmp_path: Path) -> list[Path]:
    """Best rows: r0 (ppl 10, U .5, len 20) r1 (11, .5, 15) r2 (30, .9, 5) + an all-inf run.

    reference: r2 (weighted 37.0 < 40 < 44). paper: anchor r0 (ln 20), r1 within 1.2x
    (22/20 = 1.1), r2 out (33.3/20); of r0/r1 the higher total log-prob is r1
    (-log10 11 · 16 = -16.7 > -1 · 21).
    """
    r0 = _write_run(tmp_path, "r0", [_row(1000, 20.0, 0.4, 10), _row(2000, 10.0, 0.5, 20),
                                     _row(3000, 12.0, 0.5, 20)], seed=0)
    r1 = _write_run(tmp_path, "r1", [_row(1000, 11.0, 0.5, 15), _row(2000, 50.0, 0.5, 3)],
                    params={"code_penalty": 2.0, "gradient_penalty": 2.0, "smoothness": 0.75,
                            "seed": 1, "variant": 1})
    r2 = _write_run(tmp_path, "r2", [_row(1000, 30.0, 0.9, 5), _row(2000, math.inf, 0.0, 0)],
                    seed=2)
    dead = _write_run(tmp_path, "dead", [_row(1000, math.inf, 0.0, 0)], seed=3)
    return [r0, r1, r2, dead]


def test_reference_picks_lowest_weighted(sweep: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "selected.json"
    result = select_run([str(p) for p in sweep], out)
    assert result["selected"]["run_dir"] == str(sweep[2])
    assert result["selected"]["best_update"] == 1000
    assert result["selected"]["params"]["seed"] == 2
    assert result["selected"]["metrics"]["weighted_lm_ppl"] == pytest.approx(30 / 0.81)
    assert json.loads(out.read_text()) == result


def test_paper_differs_from_reference(sweep: list[Path], tmp_path: Path) -> None:
    result = select_run(sweep, tmp_path / "selected.json", method="paper")
    proc = result["procedure"]
    assert proc["anchor"] == str(sweep[0])
    assert proc["survivors"] == [str(sweep[0]), str(sweep[1])]
    assert result["selected"]["run_dir"] == str(sweep[1])
    assert result["selected"]["params"] == {"code_penalty": 2.0, "gradient_penalty": 2.0,
                                            "smoothness": 0.75, "seed": 1, "variant": 1}
    by_name = {r["name"]: r for r in result["runs"]}
    assert by_name["r2"]["paper"]["kept"] is False
    assert by_name["r1"]["paper"]["total_log10_prob_per_utt"] == pytest.approx(
        -math.log10(11) * 16)
    # A tolerance that lets r2 through: it has the highest total log-probability of all.
    wide = select_run(sweep, tmp_path / "wide.json", method="paper", tolerance=2.0)
    assert wide["selected"]["run_dir"] == str(sweep[2])


def test_keep_last_ranks_each_run_by_its_last_row(tmp_path: Path) -> None:
    """run.json keep=last: the run stands for its last validation (what its best.pt holds), so
    an early low metric no longer wins, and a run whose last row is unusable is not ranked."""
    last = {"code_penalty": 4.0, "gradient_penalty": 1.5, "smoothness": 2.0, "keep": "last"}
    early = _write_run(tmp_path, "early", [_row(1000, 10.0, 0.9, 15), _row(2000, 40.0, 0.8, 13)],
                       params={**last, "seed": 1})
    late = _write_run(tmp_path, "late", [_row(1000, 50.0, 0.8, 15), _row(2000, 30.0, 0.8, 13)],
                      params={**last, "seed": 2})
    dead = _write_run(tmp_path, "dead", [_row(1000, 5.0, 0.9, 15), _row(2000, math.inf, 0.0, 0)],
                      params={**last, "seed": 3})
    result = select_run([early, late, dead], tmp_path / "sel.json")
    assert result["selected"]["name"] == "late"
    assert [r["best_update"] for r in result["runs"]] == [2000, 2000, None]
    assert "kept (last) row" in result["runs"][2]["reason"]
    as_best = _write_run(tmp_path, "as_best", [_row(1000, 10.0, 0.9, 15),
                                               _row(2000, 40.0, 0.8, 13)], seed=4)
    assert select_run([as_best, late], tmp_path / "b.json")["selected"]["best_update"] == 1000
    odd = _write_run(tmp_path, "odd", [_row(1000, 10.0, 0.9, 15)], params={**last, "seed": 5,
                                                                          "keep": "first"})
    assert "keep='first'" in select_run([odd, late], tmp_path / "c.json")["runs"][0]["reason"]


def test_table_complete_and_invalid_reported(sweep: list[Path], tmp_path: Path) -> None:
    missing = tmp_path / "never_ran"
    missing.mkdir()
    empty = _write_run(tmp_path, "empty", [], seed=5)
    no_info = _write_run(tmp_path, "no_info", [_row(1000, 100.0, 0.5, 4)], seed=-1)
    runs = [*sweep, missing, empty, no_info]
    result = select_run(runs, tmp_path / "selected.json")
    table = result["runs"]
    assert [r["run_dir"] for r in table] == [str(p) for p in runs]
    assert result["n_runs"] == 7 and result["n_valid"] == 4
    reasons = {r["name"]: r["reason"] for r in table}
    assert "finite weighted_lm_ppl" in reasons["dead"]
    assert reasons["never_ran"] == "no metrics.tsv"
    assert "no validation rows" in reasons["empty"]
    assert reasons["r0"] is None
    r0 = table[0]
    assert r0["best_update"] == 2000 and r0["n_rows"] == 3 and r0["params"]["seed"] == 0
    assert r0["best"]["lm_ppl"] == 10.0 and r0["best"]["per"] is None  # nan → null
    assert table[-1]["valid"] and table[-1]["params"] is None and table[-1]["warnings"]
    assert table[3]["best"] is None and table[3]["params"]["seed"] == 3


def test_all_invalid_raises(tmp_path: Path) -> None:
    dead = _write_run(tmp_path, "dead", [_row(1000, math.inf, 0.0, 0)], seed=0)
    gone = tmp_path / "gone"
    gone.mkdir()
    with pytest.raises(W2vuError, match="dead.*finite.*gone.*no metrics"):
        select_run([dead, gone], tmp_path / "selected.json")
    assert not (tmp_path / "selected.json").exists()


def test_malformed_inputs(tmp_path: Path) -> None:
    bad_json = _write_run(tmp_path, "bad_json", [_row(1000, 10.0, 0.5, 5)], seed=-1)
    (bad_json / "run.json").write_text("{not json")
    torn = _write_run(tmp_path, "torn", [_row(1000, 12.0, 0.5, 5)], seed=1)
    with (torn / METRICS).open("a") as f:
        f.write("2000\t0.5\n3000\tx" + "\tx" * (len(METRIC_COLUMNS) - 1) + "\n")
    result = select_run([bad_json, torn], tmp_path / "s.json")
    assert result["selected"]["name"] == "torn"
    assert "not readable JSON" in result["runs"][0]["reason"]
    assert result["runs"][1]["n_malformed_lines"] == 2
    with pytest.raises(W2vuError, match="method"):
        select_run([torn], tmp_path / "s.json", method="best")
    with pytest.raises(W2vuError, match="lack"):
        write_run_info(tmp_path, {"seed": 1})


def test_run_info_roundtrip(tmp_path: Path) -> None:
    write_run_info(tmp_path, {"code_penalty": 4, "gradient_penalty": 1.5, "smoothness": 0.5,
                              "seed": 3, "variant": 2})
    assert read_run_info(tmp_path) == {"code_penalty": 4.0, "gradient_penalty": 1.5,
                                       "smoothness": 0.5, "seed": 3, "variant": 2}
    assert read_run_info(tmp_path / "nope") is None


def test_reads_trainer_written_metrics(tmp_path: Path) -> None:
    """The trainer's own writer (8 significant digits, inf/nan spelled out) round-trips."""
    from w2vu.train.metrics_table import write_metrics

    for name, rows in (("a", [_row(100, 9.0, 0.5, 4), _row(200, math.inf, 0.0, 0)]),
                       ("b", [_row(100, 8.0, 0.5, 4)])):
        run = tmp_path / name
        write_metrics(run / METRICS, METRIC_COLUMNS, rows, digits=8)
        write_run_info(run, {"code_penalty": 2, "gradient_penalty": 1.5, "smoothness": 0.5,
                             "seed": 0})
    result = select_run([tmp_path / "a", tmp_path / "b"], tmp_path / "s.json", method="paper")
    assert result["selected"]["name"] == "b"
    assert result["runs"][0]["n_rows"] == 2 and result["runs"][0]["n_valid_rows"] == 1
