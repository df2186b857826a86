"""The layout of a model folder and its `model.json`, shared by assemble, transcribe and export.

Why one module: the three must agree on every file name, and every path stored in `model.json` is
relative to the folder, so that a folder moved to another machine (or path) still works.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2vu.errors import W2vuError

FORMAT = "w2vu-model/1"
MODEL_JSON = "model.json"
DICTIONARY = "dict.phn.txt"
LEXICON = "lexicon.lst"
BACKBONE = "backbone"  # a Hugging Face folder, or `backbone.pt` (a fairseq checkpoint)
PCA_DIR = "pca"
CENTROIDS = "centroids.npy"
GAN = "gan.pt"
WORD_GRAPH = "word_graph"
DECODE_CHOICE = "word_graph/choice.json"
HMM = "hmm.pkl"
HMM_TUNING = "hmm_tuning.tsv"
HMM_GRAPH = "hmm_HCLG.fst"  # built at assembly from hmm.pkl and phone_lm.arpa
PHONE_LM = "phone_lm.arpa"
CTC = "ctc.pt"
PHONE_GRAPH = "phone_graph"
GRAPH_FILES = ("HLG.fst", "tokens.txt", "words.txt")

SYSTEMS = ("ctc", "hmm", "gan")
"""What turns audio into the phone output: a CTC round, the GMM-HMM, or the GAN generator."""

RECIPE_KEYS = {
    "audio": ("min_seconds", "max_seconds", "extensions", "vad", "trim"),
    "features": ("backbone", "mfcc_stack", "layer", "normalize", "cluster_unnormalized",
                 "batch_seconds", "max_chunk_seconds", "pca_dim", "clusters", "kmeans_backend",
                 "bf16", "tf32"),
    "gan": ("variant", "decode_stride"),
    "selftrain": ("hmm_features", "ctc_lm_decode", "ctc_finetune"),
}
"""The settings from waveform to words, as `model.json` stores them under `recipe`."""


def check_recipe(recipe: dict[str, Any], where: str) -> dict[str, Any]:
    """Return `recipe` when it has every section and key, else name the first missing one."""
    for section, keys in RECIPE_KEYS.items():
        values = recipe.get(section)
        if not isinstance(values, dict):
            raise W2vuError(f"{where}: recipe has no `{section}` section; reassemble the model "
                            "with `w2vu model` (or the workflow's `model` rule)")
        missing = [k for k in keys if k not in values]
        if missing:
            raise W2vuError(f"{where}: recipe.{section} lacks {', '.join(missing)}; reassemble "
                            "the model with this version of w2vu")
    return recipe


@dataclass(frozen=True)
class ModelFolder:
    """An assembled model folder: its location and what `model.json` says."""

    root: Path
    info: dict[str, Any]

    @property
    def recipe(self) -> dict[str, Any]:
        return self.info["recipe"]

    @property
    def system(self) -> str:
        """`ctc`, `hmm`, `gan` or `gan_words`: what gives the phones."""
        return self.info["system"]["kind"]

    def path(self, name: str) -> Path:
        return self.root / name

    def backbone(self) -> Path | None:
        """The SSL model the features come from, or None for MFCC."""
        if self.recipe["features"]["backbone"] == "mfcc":
            return None
        folder = self.root / BACKBONE
        return folder if folder.is_dir() else self.root / f"{BACKBONE}.pt"

    def pca_dim(self) -> int:
        return int(self.recipe["features"]["pca_dim"])

    def needs_pca(self) -> bool:
        """PCA features feed the 1.0 GAN chain, and the HMM or small CTC model when trained on
        them."""
        on_pca = (self.recipe["selftrain"]["hmm_features"] == "pca"
                  and self.system in ("hmm", "ctc")
                  and not self.recipe["selftrain"]["ctc_finetune"])
        return self.recipe["gan"]["variant"] == 1 or on_pca


def load_model(folder: str | os.PathLike) -> ModelFolder:
    """Open a model folder written by `w2vu model`; anything else is a one-line error."""
    root = Path(folder)
    info_path = root / MODEL_JSON
    if not info_path.is_file():
        raise W2vuError(f"{root}: no {MODEL_JSON} here; pass the folder the workflow's `model` "
                        "rule wrote (results/<lang>/model)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise W2vuError(f"{info_path}: unreadable ({err}); reassemble the model") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise W2vuError(f"{info_path}: not a {FORMAT} model description; reassemble the model "
                        "with this version of w2vu")
    check_recipe(info.get("recipe", {}), str(info_path))
    model = ModelFolder(root, info)
    missing = [name for name in info["files"] if not (root / name).exists()]
    if missing:
        raise W2vuError(f"{root}: missing {', '.join(missing[:3])}; copy the whole model "
                        "folder, or reassemble it")
    return model
