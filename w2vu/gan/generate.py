"""Viterbi generation from a trained GAN checkpoint (reference §3.2).

The reference decodes with flashlight's Viterbi on a zero transition matrix, which is the same as a
frame-wise argmax, repeats merged, ids < 4 (specials, blank ``<s>`` included) dropped and
``<SIL>`` removed by ``post_process=silence``. No JOIN segmentation is applied
(``segmentation.type=NONE``). Unlike the reference, which drops utterances shorter than 3 frames
from the dataset, every manifest line gets an output line: short utterances get an empty one, so
the files stay line-aligned with the manifest and the ``.phn``/``.wrd`` references.

Outputs in ``out_dir``: ``{split}.txt`` (phones without ``<SIL>``) and ``{split}_units.txt``
(the same hypothesis with ``<SIL>`` kept, the reference layout); optionally
``{split}_frames.txt`` (frame-level argmax ids before merging) and the frame-level log-softmax
emissions as ``{split}.emissions.npy`` + ``.lengths`` for WFST decoding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2vu.errors import W2vuError
from w2vu.gan.data import MIN_LENGTH
from w2vu.gan.models import Wav2vecU
from w2vu.gan.trainer import TrainConfig, build_model
from w2vu.gan.validate import hypothesis_ids
from w2vu.io.dictionary import NUM_SPECIALS, PhoneDictionary, load_phone_dictionary
from w2vu.io.features import Features, FeatureWriter, open_features
from w2vu.io.lines import write_token_lines
from w2vu.io.torch_files import load_torch_file
from w2vu.train.runtime import resolve_device

CONV_WEIGHT = "generator.proj.1.weight"


@dataclass
class Hypotheses:
    """Per-utterance outputs, in manifest order."""

    phones: list[list[str]] = field(default_factory=list)  # no specials, no <SIL>
    units: list[list[str]] = field(default_factory=list)  # merged, no specials, <SIL> kept
    frame_ids: list[np.ndarray] = field(default_factory=list)  # frame argmax before merging
    emissions: list[np.ndarray] | None = None  # frame log-softmax [T', V] when asked


def output_paths(out_dir: str | os.PathLike, split: str) -> dict[str, Path]:
    """Where :func:`generate` writes; the Snakemake rule declares the same names."""
    out = Path(out_dir)
    return {"txt": out / f"{split}.txt", "units": out / f"{split}_units.txt",
            "frames": out / f"{split}_frames.txt", "emissions": out / f"{split}.emissions"}


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a trainer ``best.pt``; a missing or foreign file is a user error naming it."""
    ckpt = load_torch_file(path, "checkpoint", "run the GAN training step first",
                           "delete it and retrain")
    missing = [k for k in ("model", "variant", "vocabulary", "trajectory") if k not in ckpt]
    if missing:
        raise W2vuError(f"{path}: not a w2vu best.pt (missing {', '.join(missing)}); "
                        "use the best.pt written by the GAN training step")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike,
                          variant: int | None = None) -> Wav2vecU:
    """Rebuild the trained model with the trainer's own ``build_model`` and load its weights."""
    saved = int(ckpt["variant"])
    if variant is not None and variant != saved:
        raise W2vuError(f"{path}: checkpoint is wav2vec-U variant {saved}, asked for {variant}; "
                        "pass the matching variant or the other run's best.pt")
    traj = ckpt["trajectory"]
    config = TrainConfig(variant=saved, target_dim=int(traj["target_dim"]),
                         discriminator_dim=traj.get("discriminator_dim"),
                         discriminator_depth=traj.get("discriminator_depth"), device="cpu")
    vocab_size, input_dim, _ = ckpt["model"][CONV_WEIGHT].shape
    model = build_model(config, int(vocab_size), int(input_dim))
    model.load_state_dict(ckpt["model"])
    return model


def set_decode_stride(model: Wav2vecU, stride: int) -> None:
    """2.0's ``generator_stride=decode_stride``: the same conv weights at another stride."""
    if stride < 1:
        raise W2vuError(f"decode_stride must be >= 1, got {stride}")
    model.generator.stride = stride
    model.generator.proj[1].stride = (stride,)


def viterbi(frame_logits: torch.Tensor, sil_index: int) -> tuple[np.ndarray, list[int], list[int]]:
    """Frame argmax ids, merged ids without specials/SIL, and merged ids keeping SIL.

    ``frame_logits`` is T×V for one utterance (padding already removed). Repeats are merged
    before anything is dropped, as the Viterbi decoder does: ``a <SIL> a`` gives ``a a``.
    """
    vocab = frame_logits.size(-1)
    mask = torch.zeros(1, frame_logits.size(0), dtype=torch.bool)
    phones = hypothesis_ids(frame_logits.unsqueeze(0), mask, vocab, sil_index)[0]
    frames = frame_logits.argmax(-1)
    merged = frames.unique_consecutive()
    units = merged[(merged >= NUM_SPECIALS) & (merged < vocab)].tolist()
    return frames.numpy().astype(np.int64), phones, units


@torch.inference_mode()
def run_generator(model: Wav2vecU, features: Features, dictionary: PhoneDictionary,
                  device: torch.device, want_emissions: bool = False) -> Hypotheses:
    """Decode every utterance one at a time (the reference's batch size 1).

    Batch size 1 keeps boundary frames exact: with the 2.0 residual, padded frames are not zero
    after ``in_proj``, so batching would change the conv output near the end of short utterances.
    """
    model.eval().to(device)
    sil = dictionary.sil_index
    out = Hypotheses(emissions=[] if want_emissions else None)
    vocab = model.vocab_size
    for index in range(len(features)):
        length = int(features.lengths[index])
        if length < MIN_LENGTH:
            frames = np.zeros(0, dtype=np.int64)
            phones: list[int] = []
            units: list[int] = []
            emis = np.zeros((0, vocab), dtype=np.float32)
        else:
            x = torch.from_numpy(np.array(features[index], dtype=np.float32)).unsqueeze(0)
            pad = torch.zeros(1, length, dtype=torch.bool)
            gen = model.generator(x.to(device), pad.to(device))
            logits = gen["logits"][0][~gen["padding_mask"][0]].float().cpu()
            frames, phones, units = viterbi(logits, sil)
            emis = logits.log_softmax(-1).numpy()
        out.frame_ids.append(frames)
        out.phones.append([dictionary.symbols[i] for i in phones])
        out.units.append([dictionary.symbols[i] for i in units])
        if out.emissions is not None:
            out.emissions.append(emis)
    return out


def generate(checkpoint: str | os.PathLike, features_prefix: str | os.PathLike,
             dictionary: str | os.PathLike, out_dir: str | os.PathLike, split: str,
             variant: int | None = None, decode_stride: int | None = None,
             write_emissions: bool = False, write_frames: bool = False,
             device: str = "auto") -> Hypotheses:
    """Viterbi-decode ``features_prefix`` with ``checkpoint`` and write the §3.2 outputs.

    ``dictionary`` is ``dict.phn.txt``; it must give the vocabulary the model was trained with.
    Returns the hypotheses (with frame log-probs when ``write_emissions``).
    """
    ckpt = load_checkpoint(checkpoint)
    phones = load_phone_dictionary(dictionary)
    if tuple(ckpt["vocabulary"]) != phones.symbols:
        raise W2vuError(f"{dictionary}: phone dictionary differs from the one {checkpoint} was "
                        "trained with; pass the training run's dict.phn.txt")
    features = open_features(features_prefix)
    model = model_from_checkpoint(ckpt, checkpoint, variant)
    input_dim = model.generator.proj[1].in_channels
    if len(features) and features.dim != input_dim:
        raise W2vuError(f"{features_prefix}.npy: {features.dim}-d features, but {checkpoint} "
                        f"expects {input_dim}-d; generate from the features the GAN trained on")
    if decode_stride is not None:
        set_decode_stride(model, decode_stride)
    hyps = run_generator(model, features, phones, resolve_device(device), write_emissions)
    paths = output_paths(out_dir, split)
    write_token_lines(paths["txt"], hyps.phones)
    write_token_lines(paths["units"], hyps.units)
    if write_frames:
        write_token_lines(paths["frames"], [[str(i) for i in f.tolist()] for f in hyps.frame_ids])
    if write_emissions:
        assert hyps.emissions is not None
        with FeatureWriter(paths["emissions"], dim=model.vocab_size) as writer:
            for emis in hyps.emissions:
                writer.append(emis)
    return hyps

