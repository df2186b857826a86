"""Batches every trainer builds the same way: utterances of frames padded into one tensor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from w2vu.io.features import FrameSource


def pad_features(features: FrameSource, indices: Sequence[int]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded B×T×D float32 features and their padding mask (at least one frame wide)."""
    lengths = [int(features.lengths[i]) for i in indices]
    width = max(max(lengths, default=0), 1)
    out = torch.zeros(len(indices), width, features.dim)
    mask = torch.ones(len(indices), width, dtype=torch.bool)
    for row, (index, length) in enumerate(zip(indices, lengths)):
        if length:
            out[row, :length] = torch.from_numpy(np.array(features[index], dtype=np.float32))
            mask[row, :length] = False
    return out, mask
