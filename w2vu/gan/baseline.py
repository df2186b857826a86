"""The untrained baseline: a GAN checkpoint with seeded random weights, generated from like a
trained one, so the scores show what training adds."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from w2vu.gan.run_state import model_state
from w2vu.gan.trainer import TrainConfig, build_model, save_best
from w2vu.io.dictionary import load_phone_dictionary
from w2vu.io.features import open_features


def random_checkpoint(path: str | os.PathLike, dictionary: str | os.PathLike,
                      features_prefix: str | os.PathLike, variant: int = 1, seed: int = 1,
                      **config: object) -> None:
    """A ``best.pt`` holding a randomly initialised (seeded) model: the untrained baseline.

    Written with the trainer's own ``save_best``, so :func:`w2vu.gan.generate.generate` reads it
    like a trained one. ``config`` passes TrainConfig overrides (``target_dim``, ...).
    """
    phones = load_phone_dictionary(dictionary)
    dim = open_features(features_prefix).dim
    cfg = TrainConfig(variant=variant, seed=seed, device="cpu", **config)  # type: ignore[arg-type]
    with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = build_model(cfg, len(phones), dim)
    save_best(Path(path), model_state(model), 0, {}, cfg, phones)
