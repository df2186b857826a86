"""Pick one GAN run out of a hyper-parameter/seed sweep without labels (reference §3.1, §2.6).

Why: wav2vec-U trains many runs (code penalty × gradient penalty × smoothness × seed, 40-60 of
them) and most diverge; which one goes on to decoding and self-training must be chosen from
unsupervised metrics only. Each run's trainer keeps one checkpoint, ``best.pt``: the validation with
the lowest ``weighted_lm_ppl`` (``keep: best``, the reference) or the last one (``keep: last``, as
its ``run.json`` says; ``metrics.tsv`` holds every validation), so a run is represented here by that
same row: it is the only checkpoint of the run that still exists.

Two methods:

``reference`` (what fairseq's code does, §3.1)
    the run whose kept row has the lowest ``weighted_lm_ppl = lm_ppl / vocab_usage²``.

``paper`` (§3.3 of arXiv 2105.11084, as the reference document describes it)
    1. anchor P̂ = argmin over runs of ``ln lm_ppl − ln vocab_usage`` (perplexity in place of NLL;
       the hypotheses have SIL removed already);
    2. keep the runs P with ``ln lm_ppl(P) − ln U(P) < ln lm_ppl(P̂) − ln U(P̂) + ln tolerance``
       (tolerance 1.2, i.e. the paper's ``+ log 1.2``; the anchor is always kept);
    3. among the survivors pick the highest un-normalized total LM log-probability of the
       validation hypotheses. ``metrics.tsv`` has no raw sum, but the trainer defines
       ``lm_ppl = 10^(−S / (L + N))`` with ``L = out_len · N``, so ``S = −log10(lm_ppl) ·
       N · (out_len + 1)``. N (scored validation utterances) is the same for every run of a sweep
       on one valid split, so ranking by ``−log10(lm_ppl) · (out_len + 1)`` (the per-utterance
       total) ranks by S. That assumption (same valid set) is the caller's to keep.

Ties are broken by the lower ``weighted_lm_ppl``, then by the order of ``run_dirs`` (stable), and
within a run by the earliest update (as the trainer's strict ``<`` keeps the earliest best).

Runs that cannot be scored (no ``metrics.tsv``, missing columns, no row with a finite metric,
malformed ``run.json``) are listed in the output with a reason; if no run is left, W2vuError.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2vu.errors import W2vuError
from w2vu.io.atomic import write_text
from w2vu.train.metrics_table import METRICS

RUN_INFO = "run.json"
RUN_INFO_FORMAT = "w2vu-gan-run/1"
SELECTION_FORMAT = "w2vu-gan-selection/1"
# The four axes of the sweep (§1.6, §2.6); extra keys (variant, mmi, ...) are kept as given.
REQUIRED_PARAMS = ("code_penalty", "gradient_penalty", "smoothness", "seed")
METHODS = ("reference", "paper")
PAPER_TOLERANCE = 1.2
METRIC = "weighted_lm_ppl"
KEEP = ("best", "last")  # which validation a run's best.pt holds (run.json "keep"; absent: best)
# Columns each method needs from a row for the row to count.
NEEDED_COLUMNS = {
    "reference": ("update", "weighted_lm_ppl"),
    "paper": ("update", "weighted_lm_ppl", "lm_ppl", "vocab_usage", "out_len"),
}


# --------------------------------------------------------------------------- run.json


def write_run_info(run_dir: str | os.PathLike, params: Mapping[str, Any]) -> Path:
    """Record what a run is (its sweep point) beside its metrics, so selection can report it.

    Format: ``{"format": "w2vu-gan-run/1", "params": {...}}`` with at least code_penalty,
    gradient_penalty, smoothness (float) and seed (int); other JSON scalars are kept as given.
    """
    missing = [k for k in REQUIRED_PARAMS if k not in params]
    if missing:
        raise W2vuError(f"run parameters for {run_dir} lack {', '.join(missing)}")
    clean: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise W2vuError(f"run parameter {key}={value!r} is not a JSON scalar")
        if isinstance(value, float) and not math.isfinite(value):
            raise W2vuError(f"run parameter {key}={value!r} is not finite")
        clean[str(key)] = value
    clean["seed"] = int(clean["seed"])
    for key in REQUIRED_PARAMS[:3]:
        clean[key] = float(clean[key])
    path = Path(run_dir) / RUN_INFO
    write_text(path, json.dumps({"format": RUN_INFO_FORMAT, "params": clean}, indent=2,
                                sort_keys=True) + "\n")
    return path


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The params of :func:`write_run_info`; None when absent, W2vuError when malformed."""
    path = Path(run_dir) / RUN_INFO
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise W2vuError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != RUN_INFO_FORMAT:
        raise W2vuError(f"{path} is not a {RUN_INFO_FORMAT} file")
    params = data.get("params")
    if not isinstance(params, dict):
        raise W2vuError(f"{path} has no params object")
    return params


# --------------------------------------------------------------------------- metrics.tsv


def read_metrics(path: str | os.PathLike) -> tuple[list[dict[str, float]], int, list[str]]:
    """Rows of a trainer ``metrics.tsv`` as floats; also the count of malformed lines and header.

    Malformed lines (wrong field count, unparsable number) are counted, not fatal: a sweep may
    hold a run whose file was written by an older trainer.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines:
        return [], 0, []
    header = lines[0].split("\t")
    rows: list[dict[str, float]] = []
    bad = 0
    for line in lines[1:]:
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            bad += 1
            continue
        try:
            rows.append({name: float(v) for name, v in zip(header, fields)})
        except ValueError:
            bad += 1
    return rows, bad, header


def row_is_valid(row: Mapping[str, float], method: str) -> bool:
    """A row can be ranked: the metric is finite and the paper's inputs are usable."""
    if not math.isfinite(row.get("update", math.nan)):
        return False
    weighted = row.get(METRIC, math.nan)
    if not (math.isfinite(weighted) and weighted > 0):
        return False
    if method == "paper":
        lm_ppl = row.get("lm_ppl", math.nan)
        usage = row.get("vocab_usage", math.nan)
        out_len = row.get("out_len", math.nan)
        return (math.isfinite(lm_ppl) and lm_ppl > 0 and math.isfinite(usage) and usage > 0
                and math.isfinite(out_len) and out_len >= 0)
    return True


def best_row(rows: Sequence[Mapping[str, float]]) -> Mapping[str, float]:
    """The row ``best.pt`` holds: lowest weighted_lm_ppl, earliest update on ties."""
    return min(rows, key=lambda r: (r[METRIC], r["update"]))


def _scan_run(run_dir: str | os.PathLike, method: str) -> dict[str, Any]:
    """One table entry: params, the kept row (best or last) or the reason there is none."""
    entry: dict[str, Any] = {"run_dir": os.fspath(run_dir), "name": Path(run_dir).name,
                             "params": None, "valid": False, "reason": None, "warnings": [],
                             "n_rows": 0, "n_valid_rows": 0, "n_malformed_lines": 0,
                             "best_update": None, "best": None}
    try:
        entry["params"] = read_run_info(run_dir)
    except W2vuError as exc:
        entry["reason"] = str(exc)
        return entry
    if entry["params"] is None:
        entry["warnings"].append(f"no {RUN_INFO}: params unknown")
    metrics = Path(run_dir) / METRICS
    if not metrics.is_file():
        entry["reason"] = f"no {METRICS}"
        return entry
    try:
        rows, bad, header = read_metrics(metrics)
    except (OSError, UnicodeDecodeError) as exc:
        entry["reason"] = f"{METRICS} unreadable: {exc}"
        return entry
    entry["n_rows"], entry["n_malformed_lines"] = len(rows), bad
    missing = [c for c in NEEDED_COLUMNS[method] if c not in header]
    if missing:
        entry["reason"] = f"{METRICS} lacks column(s) {', '.join(missing)}"
        return entry
    if bad:
        entry["warnings"].append(f"{bad} malformed line(s) in {METRICS} skipped")
    valid = [r for r in rows if row_is_valid(r, method)]
    entry["n_valid_rows"] = len(valid)
    if not rows:
        entry["reason"] = f"{METRICS} has no validation rows"
        return entry
    if not valid:
        entry["reason"] = (f"none of {len(rows)} rows has a finite {METRIC}"
                           + (" and usable lm_ppl/vocab_usage/out_len" if method == "paper"
                              else ""))
        return entry
    keep = (entry["params"] or {}).get("keep", "best")
    if keep not in KEEP:
        entry["reason"] = f"{RUN_INFO} has keep={keep!r}, not one of {', '.join(KEEP)}"
        return entry
    if keep == "last":
        last = max(rows, key=lambda r: r["update"])
        if not row_is_valid(last, method):
            entry["reason"] = (f"the kept (last) row, update {last['update']:g}, has no finite "
                               f"{METRIC}")
            return entry
        best = last
    else:
        best = best_row(valid)
    entry.update(valid=True, best_update=int(best["update"]), best=dict(best))
    return entry


# --------------------------------------------------------------------------- selection


def _paper_scores(best: Mapping[str, float]) -> tuple[float, float]:
    """(step 1/2 score ln ppl − ln U, step 3 per-utterance total log10 probability)."""
    score = math.log(best["lm_ppl"]) - math.log(best["vocab_usage"])
    total = -math.log10(best["lm_ppl"]) * (best["out_len"] + 1.0)
    return score, total


def _select_reference(candidates: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    chosen = min(candidates, key=lambda e: e["best"][METRIC])  # min() keeps the first on ties
    return chosen, {"rule": f"lowest {METRIC} = lm_ppl / vocab_usage^2 at each run's kept row"}


def _select_paper(candidates: list[dict[str, Any]],
                  tolerance: float) -> tuple[dict[str, Any], dict[str, Any]]:
    for e in candidates:
        score, total = _paper_scores(e["best"])
        e["paper"] = {"score": score, "total_log10_prob_per_utt": total, "kept": False}
    anchor = min(candidates, key=lambda e: (e["paper"]["score"], e["best"][METRIC]))
    limit = anchor["paper"]["score"] + math.log(tolerance)
    survivors = [e for e in candidates if e is anchor or e["paper"]["score"] < limit]
    for e in survivors:
        e["paper"]["kept"] = True
    chosen = max(survivors, key=lambda e: (e["paper"]["total_log10_prob_per_utt"],
                                           -e["best"][METRIC]))
    info = {
        "rule": "1) anchor = argmin ln lm_ppl - ln vocab_usage; 2) keep runs with score < "
                "anchor score + ln tolerance; 3) pick max total LM log10-prob, estimated per "
                "utterance as -log10(lm_ppl) * (out_len + 1)",
        "tolerance": tolerance,
        "anchor": anchor["run_dir"],
        "anchor_score": anchor["paper"]["score"],
        "survivors": [e["run_dir"] for e in survivors],
    }
    return chosen, info


def _jsonable(value: Any) -> Any:
    """JSON has no inf/nan: non-finite floats become null (the table says why a run failed)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def select_run(run_dirs: Sequence[str | os.PathLike], out_json: str | os.PathLike,
               method: str = "reference", tolerance: float = PAPER_TOLERANCE) -> dict[str, Any]:
    """Choose one run of a sweep, write ``out_json`` (atomically) and return what was written.

    The output has the chosen run (dir, params, best update, its metrics row), the method's
    working (paper: anchor and survivors) and ``runs``: every input run in input order, valid or
    not, with its params, best row, or the reason it could not be ranked.
    """
    if method not in METHODS:
        raise W2vuError(f"selection method must be one of {', '.join(METHODS)}, got {method!r}")
    if not run_dirs:
        raise W2vuError("no GAN runs to select from")
    if not (math.isfinite(tolerance) and tolerance >= 1.0):
        raise W2vuError(f"paper tolerance must be a finite number >= 1, got {tolerance}")
    names = [os.fspath(d) for d in run_dirs]
    if len(set(names)) != len(names):
        raise W2vuError("the same run directory is listed twice")
    table = [_scan_run(d, method) for d in run_dirs]
    candidates = [e for e in table if e["valid"]]
    if not candidates:
        reasons = "; ".join(f"{e['run_dir']}: {e['reason']}" for e in table)
        raise W2vuError(f"no GAN run has a usable {METRICS} ({reasons})")
    if method == "reference":
        chosen, info = _select_reference(candidates)
    else:
        chosen, info = _select_paper(candidates, tolerance)
    result = {
        "format": SELECTION_FORMAT,
        "method": method,
        "metric": METRIC,
        "procedure": info,
        "selected": {"run_dir": chosen["run_dir"], "name": chosen["name"],
                     "params": chosen["params"], "best_update": chosen["best_update"],
                     "metrics": chosen["best"]},
        "n_runs": len(table),
        "n_valid": len(candidates),
        "runs": table,
    }
    result = _jsonable(result)
    write_text(out_json, json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result
