"""CTC transcription: a model file of either kind (the small encoder, or a fine-tuned backbone)
rebuilt, and its greedy transcripts and frame log-probabilities of a split.

Model loading lives here, where both model kinds are known, so that neither the model nor the
trainers import each other in a circle.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import fields
from typing import Any

import numpy as np
import torch

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.dictionary import load_phone_dictionary
from w2vu.io.features import FeatureWriter, FrameSource, open_features
from w2vu.io.torch_files import load_torch_file
from w2vu.logs import progress
from w2vu.selftrain.ctc.data import (
    bucket_batches,
)
from w2vu.selftrain.ctc.model import (
    MODEL_FORMAT,
    CtcEncoder,
    CtcModelConfig,
    CtcModule,
)
from w2vu.train.batches import pad_features
from w2vu.train.ctc import greedy_ids
from w2vu.train.runtime import resolve_device

log = logging.getLogger(__name__)

def load_ctc_model(path: str | os.PathLike) -> tuple[CtcModule, dict[str, Any]]:
    """Rebuild a model written by the CTC trainer (the small encoder or a fine-tuned backbone);
    a missing or foreign file names the fix.

    Loaded with ``weights_only=True``: a model file is never unpickled with arbitrary code.
    """
    ckpt = load_torch_file(path, "CTC model", "run the CTC training step first",
                           "delete it and retrain")
    kind = ckpt.get("format") if isinstance(ckpt, dict) else None
    if kind == MODEL_FORMAT:
        known = {f.name for f in fields(CtcModelConfig)}
        config = CtcModelConfig(**{k: v for k, v in ckpt["model_config"].items() if k in known})
        model: CtcModule = CtcEncoder(config, int(ckpt["input_dim"]), len(ckpt["vocabulary"]))
        model.load_state_dict(ckpt["model"])
    else:
        from w2vu.selftrain.ctc.finetune import FINETUNE_FORMAT, FinetunedCtc

        if kind != FINETUNE_FORMAT:
            raise W2vuError(f"{path}: not a w2vu CTC model (expected format {MODEL_FORMAT} or "
                            f"{FINETUNE_FORMAT}); use the model.pt written by the CTC training "
                            "step")
        model = FinetunedCtc.from_record(ckpt)
    return model.eval(), ckpt


TRANSCRIBE_WINDOW = 512  # utterances decoded together (sorted by length inside a window)


def _windows(count: int, size: int) -> Iterator[range]:
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


@torch.no_grad()
def frame_log_probs(model: CtcModule, source: FrameSource, indices: Sequence[int],
                    device: torch.device, max_frames: int) -> dict[int, np.ndarray]:
    """Log-softmax [T_i, V] for the given utterances, batched by length (at most
    ``model.max_batch`` a batch); an utterance too short for one output step gives (0, V)."""
    model.eval()
    out: dict[int, np.ndarray] = {}
    steps_of = model.output_lengths(torch.as_tensor(np.asarray(source.lengths[list(indices)],
                                                               dtype=np.int64))).tolist()
    todo = [i for i, n in zip(indices, steps_of) if n > 0]
    for i, n in zip(indices, steps_of):
        if n <= 0:
            out[i] = np.zeros((0, model.vocab_size), dtype=np.float32)
    lengths = np.asarray(source.lengths[todo] if todo else np.zeros(0), dtype=np.int64)
    for positions in bucket_batches(lengths, max_frames, model.max_batch):
        group = [todo[p] for p in positions.tolist()]
        x, mask = pad_features(source, group)
        logits, out_mask = model(x.to(device), mask.to(device))
        lp = logits.float().log_softmax(-1).cpu().numpy()
        steps = (~out_mask).sum(1).tolist()
        for row, i in enumerate(group):
            out[i] = lp[row, : steps[row]]
    return out


def transcribe_ctc(model_path: str | os.PathLike, source: FrameSource | str | os.PathLike,
                   dictionary: str | os.PathLike, out_txt: str | os.PathLike,
                   emissions_prefix: str | os.PathLike | None = None, device: str = "auto",
                   max_frames: int | None = None, threads: int | None = None
                   ) -> list[list[str]]:
    """Greedy CTC transcripts, one line per utterance (phones, no ``<SIL>``), in input order.

    ``source`` is a feature prefix (the small encoder) or an opened source (e.g. the audio of a
    manifest, for a fine-tuned backbone). With ``emissions_prefix``, the frame log-probabilities
    are also written as ``{prefix}.npy`` + ``.lengths`` with one column per fairseq dictionary
    entry (the 4 specials included), the layout ``w2vu.gan.generate`` writes for the WFST
    decoder. Utterances are processed in windows of consecutive indices, so memory does not
    grow with the split. ``max_frames`` (padded input frames a batch) defaults to the model's.
    """
    if threads:
        torch.set_num_threads(threads)
    model, record = load_ctc_model(model_path)
    phones = load_phone_dictionary(dictionary)
    if tuple(record["vocabulary"]) != phones.symbols:
        raise W2vuError(f"{dictionary}: phone dictionary differs from the one {model_path} was "
                        "trained with; pass the training run's dict.phn.txt")
    name = (source if isinstance(source, (str, os.PathLike))
            else getattr(source, "manifest", "the input"))
    if isinstance(source, (str, os.PathLike)):
        source = open_features(source)
    if len(source) and int(np.sum(source.lengths)) and source.dim != model.input_dim:
        raise W2vuError(f"{name}: {source.dim}-d input, but {model_path} expects "
                        f"{model.input_dim}-d; a model fine-tuned from a backbone transcribes "
                        "audio (a manifest), the small encoder the features it trained on")
    dev = resolve_device(device)
    model.to(dev)
    sil = phones.sil_index
    hyps: list[list[str]] = []
    writer = (FeatureWriter(emissions_prefix, dim=model.vocab_size)
              if emissions_prefix is not None else None)
    with atomic_path(out_txt) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as text, \
            (writer if writer is not None else nullcontext()):
        windows = list(_windows(len(source), TRANSCRIBE_WINDOW))
        for window in progress(windows, len(windows), "transcription windows"):
            lps = frame_log_probs(model, source, list(window), dev,
                                  max_frames or model.inference_frames)
            for i in window:
                lp = lps.pop(i)
                line = [phones.symbols[j] for j in greedy_ids(torch.from_numpy(lp), sil)]
                hyps.append(line)
                text.write(" ".join(line) + "\n")
                if writer is not None:
                    writer.append(lp)
    log.info("transcribed %d utterances of %s into %s", len(hyps), name, out_txt)
    return hyps
