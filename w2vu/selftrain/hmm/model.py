"""The monophone HMM system and its file: the model, the settings it is trained with, the
features it reads (per-utterance CMVN and deltas) and its allow-listed pickle.

Model file (`train_hmm`'s `out_model`): a pickle written by `train_hmm`, holding the Kaldi
objects (AmDiagGmm, TransitionModel, ContextDependency, their own pickle support) and plain
Python values. `load_hmm` unpickles it with an allow-list (the kaldi-hmm-gmm classes and numpy
arrays only), so no other code can run on load; still, only load model files written by w2vu.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path
from w2vu.io.pickles import IMPORT, load_restricted
from w2vu.kaldi_stack import kaldi_hmm_gmm as khg
from w2vu.selftrain.hmm.graph import (
    Lang,
    make_lang,
)

MODEL_FORMAT = "w2vu-hmm-mono-1"
REFERENCE_REALIGN = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35, 38)
DELTA_WINDOW = 2


@dataclass(frozen=True)
class HmmConfig:
    """Training settings; the defaults are the reference's train_mono.sh ones."""

    iters: int = 40
    gaussians: int = 1000
    max_iter_inc: int = 30  # mix up during the first passes only
    realign_iters: tuple[int, ...] = REFERENCE_REALIGN
    boost_silence: float = 1.25
    initial_beam: float = 40.0
    regular_beam: float = 60.0
    retry_beam: float = 120.0
    power: float = 0.25
    sil_prob: float = 0.5
    delta_order: int = 2  # add-deltas order; 0 keeps the input features as they are
    norm_vars: bool = False  # apply-cmvn's default: per-utterance mean normalisation only
    acoustic_scale: float = 0.1
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    perturb_factor: float = 0.01
    min_count: float = 20.0  # minimum count per Gaussian when mixing up
    max_utterances: int | None = None  # the reference's mono subset (2000); None: all


@dataclass
class HmmModel:
    """A trained monophone system plus what is needed to use it on new features."""

    am: khg.AmDiagGmm
    trans_model: khg.TransitionModel
    tree: khg.ContextDependency
    phones: list[str]  # non-silence phones; phone id = index + 2
    input_dim: int
    delta_order: int
    norm_vars: bool
    sil_prob: float

    @property
    def lang(self) -> Lang:
        return make_lang(self.phones)

    def features(self, frames: np.ndarray) -> np.ndarray:
        """The model's view of one utterance's input frames."""
        if frames.shape[1] != self.input_dim:
            raise W2vuError(f"features have {frames.shape[1]} dims, the HMM was trained on "
                            f"{self.input_dim}; decode the features it was trained on")
        return prepare_features(frames, self.delta_order, self.norm_vars)


# ---------------------------------------------------------------------------------- features

def _delta_scales(order: int, window: int = DELTA_WINDOW) -> list[np.ndarray]:
    """Kaldi's DeltaFeatures filters: order k is the order-1 filter convolved k times."""
    first = np.arange(-window, window + 1, dtype=np.float64)
    first /= 2.0 * sum(n * n for n in range(1, window + 1))
    scales = [np.ones(1)]
    for _ in range(order):
        scales.append(np.convolve(scales[-1], first))
    return scales


def add_deltas(frames: np.ndarray, order: int = 2, window: int = DELTA_WINDOW) -> np.ndarray:
    """Kaldi add-deltas: [x, Δx, ΔΔx] with edge frames repeated (same filters as Kaldi)."""
    if order == 0:
        return frames
    frames = np.asarray(frames, dtype=np.float32)
    out = [frames]
    length = len(frames)
    for scale in _delta_scales(order, window)[1:]:
        half = len(scale) // 2
        padded = np.pad(frames, ((half, half), (0, 0)), mode="edge") if length else frames
        acc = np.zeros_like(frames, dtype=np.float64)
        for j, s in enumerate(scale):
            if s != 0.0:
                acc += s * padded[j: j + length]
        out.append(acc.astype(np.float32))
    return np.concatenate(out, axis=1)


def prepare_features(frames: np.ndarray, delta_order: int = 2, norm_vars: bool = False
                     ) -> np.ndarray:
    """Per-utterance CMVN (each utterance is its own speaker, as in the reference), then deltas."""
    x = np.asarray(frames, dtype=np.float64)
    if len(x):
        x = x - x.mean(axis=0)
        if norm_vars:
            x = x / np.maximum(x.std(axis=0), 1e-5)
    return add_deltas(x.astype(np.float32), delta_order)


_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.numeric", "_frombuffer"),
            ("numpy.core.numeric", "_frombuffer")}


def _resolve(module: str, name: str) -> object:
    """Only kaldi-hmm-gmm classes and numpy arrays may be created: no arbitrary code on load."""
    return IMPORT if module == "_kaldi_hmm_gmm" or (module, name) in _ALLOWED else None


def _refusal(qualified: str) -> Exception:
    return pickle.UnpicklingError(f"{qualified} is not allowed in an HMM model file")


def save_hmm(model: HmmModel, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write the model atomically (see the module docstring for the format)."""
    payload = {"format": MODEL_FORMAT, "am": model.am, "trans_model": model.trans_model,
               "tree": model.tree, "phones": list(model.phones), "input_dim": model.input_dim,
               "delta_order": model.delta_order, "norm_vars": model.norm_vars,
               "sil_prob": model.sil_prob, **(extra or {})}
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def load_hmm(path: str | os.PathLike) -> HmmModel:
    """Read a model written by `train_hmm` (allow-listed unpickling)."""
    path = Path(path)
    try:
        payload = load_restricted(path.read_bytes(), _resolve, _refusal)
    except OSError as e:
        raise W2vuError(f"HMM model {path}: {e}; run the HMM training first") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise W2vuError(f"{path}: not an HMM model written by w2vu ({e}); retrain it") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise W2vuError(f"{path}: not a {MODEL_FORMAT} model file; retrain it with this version")
    return HmmModel(payload["am"], payload["trans_model"], payload["tree"],
                    list(payload["phones"]), int(payload["input_dim"]),
                    int(payload["delta_order"]), bool(payload["norm_vars"]),
                    float(payload["sil_prob"]))


