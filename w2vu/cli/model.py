"""The finished recognizer: `w2vu model` assembles a run's model folder, `w2vu transcribe` runs
it on new audio, `w2vu export-hf` writes a fine-tuned backbone as a Hugging Face folder."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import IO

from w2vu.cli.commands import Commands
from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path

log = logging.getLogger("w2vu")
COMMANDS = Commands()
TSV_COLUMNS = ("path", "words", "phones", "seconds", "error")


def _json_arg(text: str, name: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise W2vuError(f"{name}: not JSON ({err})") from None
    if not isinstance(value, dict):
        raise W2vuError(f"{name}: expected a JSON object")
    return value


def _model_arguments(p: argparse.ArgumentParser) -> None:
    for name in ("dictionary", "lexicon", "word-graph", "decode-choice", "gan-selection"):
        p.add_argument(f"--{name}", required=True, type=Path)
    p.add_argument("--pca", nargs=2, type=Path, default=[], metavar=("A", "B"),
                   help="the PCA matrices ({dim}_pca_A.npy, {dim}_pca_b.npy)")
    for name in ("centroids", "backbone", "hmm-model", "hmm-tuning", "hmm-decision",
                 "phone-lm", "ctc-rounds", "ctc-decision", "phone-graph", "scores"):
        p.add_argument(f"--{name}", type=Path)
    p.add_argument("--recipe", required=True, help="JSON: audio, features, gan, selftrain settings")
    p.add_argument("--config", default="{}", help="JSON: the run's config, kept in model.json")
    p.add_argument("--system", default="auto", help="auto, gan, hmm or ctc_iter<N>")
    p.add_argument("--out-dir", required=True, type=Path)


@COMMANDS("model", _model_arguments, "assemble a run's recognizer into one movable folder")
def cmd_model(a: argparse.Namespace) -> None:
    from w2vu.model.assemble import RunFiles, assemble_model

    files = RunFiles(a.dictionary, a.lexicon, a.word_graph, a.decode_choice, a.gan_selection,
                     tuple(a.pca), a.centroids, a.backbone, a.hmm_model, a.hmm_tuning,
                     a.hmm_decision, a.phone_lm, a.ctc_rounds, a.ctc_decision, a.phone_graph,
                     a.scores)
    assemble_model(files, _json_arg(a.recipe, "--recipe"), _json_arg(a.config, "--config"),
                   a.system, a.out_dir)


def _row(t, fmt: str) -> str:
    if fmt == "jsonl":
        record = {"path": t.path, "words": t.words, "phones": t.phones,
                  "seconds": round(t.seconds, 3)}
        return json.dumps({**record, **({"error": t.error} if t.error else {})},
                          ensure_ascii=False) + "\n"
    return "\t".join((t.path, t.words, t.phones, f"{t.seconds:.3f}", t.error)) + "\n"


def _write_transcripts(results, out: IO[str], fmt: str) -> tuple[int, int, float]:
    """Write every result as it comes; return (files, failed, seconds of audio)."""
    if fmt == "tsv":
        out.write("\t".join(TSV_COLUMNS) + "\n")
    files = failed = 0
    seconds = 0.0
    for t in results:
        out.write(_row(t, fmt))
        out.flush()
        files += 1
        seconds += t.seconds
        if t.error:
            failed += 1
            print(f"w2vu transcribe: {t.path}: {t.error}", file=sys.stderr)
    return files, failed, seconds


def _transcribe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="a folder written by `w2vu model`")
    p.add_argument("inputs", nargs="+", help="audio files, folders (recursive) or .tsv lists "
                   "with a path column")
    p.add_argument("--format", choices=("tsv", "jsonl"), default="tsv")
    p.add_argument("--out", type=Path, help="output file (default: standard output)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--batch-files", type=int, default=100,
                   help="files a batch goes through the steps together (default 100)")


@COMMANDS("transcribe", _transcribe_arguments,
          "transcribe audio files, folders or TSV lists with a model folder")
def cmd_transcribe(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from w2vu.model.folder import load_model
    from w2vu.model.transcribe import Options, transcribe

    if a.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise W2vuError("--device cuda: no CUDA device is visible here; use --device cpu")
    if not a.verbose:  # the steps' own progress lines would drown the output
        logging.getLogger().setLevel(logging.WARNING)
    model = load_model(a.model)
    options = Options(device=a.device, threads=a.threads, batch_files=a.batch_files)
    start = time.perf_counter()
    with tqdm(total=0, unit="file", desc="transcribe", disable=None, file=sys.stderr) as bar:
        results = transcribe(model, a.inputs, options, progress=bar)
        if a.out is None:
            files, failed, seconds = _write_transcripts(results, sys.stdout, a.format)
        else:
            with atomic_path(a.out) as tmp, open(tmp, "w", encoding="utf-8") as out:
                files, failed, seconds = _write_transcripts(results, out, a.format)
    elapsed = time.perf_counter() - start
    print(f"w2vu transcribe: {files} files, {failed} failed, {seconds:.1f} s of audio in "
          f"{elapsed:.1f} s ({seconds / max(elapsed, 1e-9):.1f}x real time)", file=sys.stderr)
    return 1 if failed else 0


def _export_hf_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="a folder written by `w2vu model`")
    p.add_argument("--out", required=True, type=Path, help="the folder to write")


@COMMANDS("export-hf", _export_hf_arguments, "write a fine-tuned CTC model as a Hugging Face "
          "Wav2Vec2ForCTC folder with its phone processor")
def cmd_export_hf(a: argparse.Namespace) -> None:
    from w2vu.model.export_hf import export_hf
    from w2vu.model.folder import load_model

    export_hf(load_model(a.model), a.out)
    log.info("export-hf: %s written; load it with transformers.pipeline("
             "'automatic-speech-recognition', model=%r)", a.out, str(a.out))
