"""Stage `model`: gather a run's recognizer into one self-contained folder with `model.json`.

Why: the recognizer is spread over a dozen result folders (feature recipe, PCA, centroids, GAN,
HMM or CTC round, lexicon, graphs, tuned settings). Here they are hard-linked (copied across file
systems) under fixed names, nothing points back into `results/`, and `model.json` says what the
folder is: which system gives the phones, how it was chosen, its scores, the config, versions.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from w2vu.decode.tune import read_choice
from w2vu.errors import W2vuError
from w2vu.eval.score import SCORE_COLUMNS
from w2vu.gan.generate import load_checkpoint
from w2vu.io.atomic import atomic_dir
from w2vu.io.tables import read_table
from w2vu.model import folder as layout
from w2vu.selftrain.ctc.rounds import read_decision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFiles:
    """Where a run's pieces are (the workflow's `model` rule names them)."""

    dictionary: Path
    lexicon: Path
    word_graph: Path  # folder with HLG.fst, tokens.txt, words.txt
    decode_choice: Path  # wfst_tune's choice.json
    gan_selection: Path  # gan/selected.json
    pca: tuple[Path, ...] = ()  # {dim}_pca_A.npy, {dim}_pca_b.npy
    centroids: Path | None = None
    backbone: Path | None = None
    hmm_model: Path | None = None
    hmm_tuning: Path | None = None
    hmm_decision: Path | None = None  # selftrain/ctc/iter0/round.json: the HMM's score
    phone_lm: Path | None = None
    ctc_rounds: Path | None = None  # selftrain/ctc, with iter{N}/model.pt and round.json
    ctc_decision: Path | None = None  # the last round's round.json (names the best kept round)
    phone_graph: Path | None = None
    scores: Path | None = None


@dataclass(frozen=True)
class Choice:
    """The system that gives the phones, the stage name of its transcripts, its score."""

    kind: str  # ctc, hmm, gan or gan_words
    stage: str  # ctc_iter{N}, hmm, gan_viterbi or gan_wfst_phones: its transcripts/scores stage
    final_stage: str  # the stage whose transcripts this model reproduces (selftrained for auto)
    ctc_round: int | None
    unsupervised: dict[str, Any]


def _require(path: Path | None, what: str, system: str) -> Path:
    if path is None:
        raise W2vuError(f"model.system={system}: the run has no {what}; choose another system "
                        "(auto, gan, gan_words, hmm or ctc_iter<N>)")
    return path


def choose_system(files: RunFiles, system: str) -> Choice:
    """Resolve `model.system`: `auto` is what the run ended with (the best kept CTC round, else
    the HMM, else the GAN); `gan`, `gan_words` (the GAN's WFST words through the lexicon),
    `hmm`, `ctc_iter<N>` choose explicitly."""
    if system == "auto":
        best = read_decision(files.ctc_decision).best_round if files.ctc_decision else None
        kind = "ctc" if best else "hmm" if files.hmm_model else "gan"
        auto = _choose(files, kind, best)
        return Choice(auto.kind, auto.stage, "selftrained" if files.ctc_decision else auto.stage,
                      auto.ctc_round, auto.unsupervised)
    if system in ("gan", "gan_words", "hmm"):
        return _choose(files, system, None)
    if system.startswith("ctc_iter") and system[8:].isdigit() and int(system[8:]) > 0:
        return _choose(files, "ctc", int(system[8:]))
    raise W2vuError(f"model.system: {system!r} is not auto, gan, gan_words, hmm or ctc_iter<N>")


def _choose(files: RunFiles, kind: str, ctc_round: int | None) -> Choice:
    if kind in ("gan", "gan_words"):
        selected = json.loads(files.gan_selection.read_text(encoding="utf-8"))["selected"]
        score = {"method": "gan-select", "run": selected["name"], **selected["metrics"]}
        stage = "gan_viterbi" if kind == "gan" else "gan_wfst_phones"
        return Choice(kind, stage, stage, None, score)
    if kind == "hmm":
        _require(files.hmm_model, "HMM", kind)
        score = {}
        if files.hmm_decision is not None:
            d = read_decision(files.hmm_decision)
            score = {"method": "ln(phone LM ppl) x error vs GAN labels", "score": d.score,
                     "lm_ppl": d.lm_ppl, "error_rate": d.error_rate}
        return Choice("hmm", "hmm", "hmm", None, score)
    rounds = _require(files.ctc_rounds, "CTC rounds", f"ctc_iter{ctc_round}")
    decision = rounds / f"iter{ctc_round}" / "round.json"
    if not (rounds / f"iter{ctc_round}" / "model.pt").is_file() or not decision.is_file():
        raise W2vuError(f"model.system=ctc_iter{ctc_round}: {rounds}/iter{ctc_round} has no "
                        "finished round; choose a round up to selftrain.ctc_iterations")
    d = read_decision(decision)
    score = {"method": "ln(phone LM ppl) x error vs GAN labels", "score": d.score,
             "lm_ppl": d.lm_ppl, "error_rate": d.error_rate, "kept": d.keep}
    return Choice("ctc", f"ctc_iter{ctc_round}", f"ctc_iter{ctc_round}", ctc_round, score)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows one, else a copy: never a symlink, so the
    folder stands on its own."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_file)
    else:
        _link_file(source, target)


def _link_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    try:
        os.link(os.path.realpath(source), target)
    except OSError:
        shutil.copy2(source, target)


def _scores(path: Path | None, stages: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of `scores.tsv` for the stages this model reproduces."""
    if path is None:
        return []
    return [{**r, "errors": int(r["errors"]), "reference_tokens": int(r["reference_tokens"]),
             "rate": float(r["rate"])}
            for r in read_table(path, SCORE_COLUMNS) if r["stage"] in stages]


def _versions() -> dict[str, str]:
    names = ("w2vu", "torch", "transformers", "kaldi-decoder", "kaldi-hmm-gmm", "numpy")
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _files_to_link(files: RunFiles, choice: Choice, recipe: dict[str, Any],
                   model: layout.ModelFolder) -> dict[str, Path]:
    """Folder name -> source, for what this model's chain reads."""
    selected = json.loads(files.gan_selection.read_text(encoding="utf-8"))["selected"]
    links = {layout.DICTIONARY: files.dictionary, layout.LEXICON: files.lexicon,
             layout.GAN: Path(selected["run_dir"]) / "best.pt",
             layout.DECODE_CHOICE: files.decode_choice}
    links.update({f"{layout.WORD_GRAPH}/{n}": files.word_graph / n for n in layout.GRAPH_FILES})
    if files.backbone is not None:
        name = layout.BACKBONE if files.backbone.is_dir() else f"{layout.BACKBONE}.pt"
        links[name] = files.backbone
    if model.needs_pca():
        if not files.pca:
            _require(None, "PCA", choice.stage)
        links.update({f"{layout.PCA_DIR}/{path.name}": path for path in files.pca})
    if recipe["gan"]["variant"] == 1:
        links[layout.CENTROIDS] = _require(files.centroids, "k-means centroids", choice.stage)
    if choice.kind == "hmm":
        links[layout.HMM] = _require(files.hmm_model, "HMM", "hmm")
        links[layout.HMM_TUNING] = _require(files.hmm_tuning, "HMM tuning table", "hmm")
        links[layout.PHONE_LM] = _require(files.phone_lm, "decoding phone LM", "hmm")
    if choice.kind == "ctc":
        assert files.ctc_rounds is not None
        links[layout.CTC] = files.ctc_rounds / f"iter{choice.ctc_round}" / "model.pt"
        if recipe["selftrain"]["ctc_lm_decode"]:
            graph = _require(files.phone_graph, "phone graph", choice.stage)
            links.update({f"{layout.PHONE_GRAPH}/{n}": graph / n for n in layout.GRAPH_FILES})
    return links


def assemble_model(files: RunFiles, recipe: dict[str, Any], config: dict[str, Any],
                   system: str, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write the model folder `out_dir` (atomically) and return its `model.json` content."""
    choice = choose_system(files, system)
    selected = json.loads(files.gan_selection.read_text(encoding="utf-8"))["selected"]
    recipe = {**recipe, "gan": {**recipe["gan"],
                                "variant": int(load_checkpoint(
                                    Path(selected["run_dir"]) / "best.pt")["variant"])}}
    layout.check_recipe(recipe, "model recipe")
    read_choice(files.decode_choice)  # a broken choice fails here, not at transcription
    stages = tuple(dict.fromkeys((choice.stage, choice.final_stage, "gan_wfst")))
    info: dict[str, Any] = {
        "format": layout.FORMAT,
        "what": (f"w2vu recognizer: phones from the {choice.kind.upper()} system "
                 f"({choice.stage}), words from the selected GAN's emissions decoded over the "
                 "word graph with the tuned settings (gan_wfst)"),
        "system": {"kind": choice.kind, "stage": choice.stage, "reproduces": choice.final_stage,
                   "requested": system, "ctc_round": choice.ctc_round,
                   "gan_run": selected["name"]},
        "unsupervised_selection": choice.unsupervised,
        "scores": _scores(files.scores, stages),
        "recipe": recipe,
        "config": config,
        "versions": _versions(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    probe = layout.ModelFolder(Path(out_dir), {**info, "recipe": recipe})
    links = _files_to_link(files, choice, recipe, probe)
    info["files"] = sorted([*links, *([layout.HMM_GRAPH] if choice.kind == "hmm" else [])])
    with atomic_dir(out_dir) as tmp:
        for name, source in links.items():
            if not source.exists():
                raise W2vuError(f"{source}: missing; rerun the workflow up to the `model` rule")
            link_or_copy(source, tmp / name)
        if choice.kind == "hmm":  # tens of seconds to build: once here, not per transcription
            from w2vu.selftrain.hmm.decode import HmmDecoder

            HmmDecoder(tmp / layout.HMM, tmp / layout.PHONE_LM).save_graph(tmp / layout.HMM_GRAPH)
        (tmp / layout.MODEL_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    log.info("model: %s (%s) in %s, %d files", choice.kind, choice.stage, out_dir, len(links))
    return info
