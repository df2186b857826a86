"""The workflow with a real (tiny) SSL backbone runs to self-trained transcripts, and its CTC round
fine-tunes that backbone on the audio instead of training the small encoder on features."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from tests.test_workflow import (
    CORPUS,
    TINY_DOWNSTREAM,
    TINY_GAN,
    planned_jobs,
    snakemake,
    write_corpus,
)
from tests.tiny_models import one_torch_thread, save_hf, tiny_model
from w2vu.io.manifest import read_manifest
from w2vu.selftrain.ctc_finetune import FINETUNE_FORMAT

pytestmark = pytest.mark.slow
SPLITS = ("train", "valid")


def test_ctc_round_finetunes_the_configured_backbone(tmp_path, synth):
    workdir = write_corpus(tmp_path, synth)
    with one_torch_thread():
        save_hf(tiny_model(stable=True), workdir / "hf model")
    config = {"languages": {"tiny": {"espeak": "en-us", "audio": {"paths": [CORPUS]},
                                     "text": ["text.txt"],
                                     "splits": {"fractions": {"train": 0.7, "valid": 0.3}}}},
              "audio": {"shards": 1}, "text": {"min_phones": 1},
              "features": {"backbone": "hf model", "layer": 2, "clusters": 8, "km_clusters": 4},
              "gan": TINY_GAN, **TINY_DOWNSTREAM}
    config["selftrain"] = {**config["selftrain"], "finetune_max_updates": 3,
                           "finetune_batch_seconds": 8}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, *(f"results/tiny/transcripts/selftrained/{s}.txt" for s in SPLITS))

    out = workdir / "results/tiny"
    log = (workdir / "logs/tiny/ctc_train/iter1.log").read_text()
    assert "fine-tuning hf model (wav2vec2, 4 blocks" in log
    record = torch.load(out / "selftrain/ctc/iter1/model.pt", weights_only=True)
    assert record["format"] == FINETUNE_FORMAT and record["update"] >= 1
    assert record["hf_config"]["num_hidden_layers"] == 4  # every block, not the feature layer
    for split in SPLITS:
        rows = len(read_manifest(out / f"manifest/{split}.tsv").rows)
        for stage in ("selftrain/ctc/iter1/transcripts", "transcripts/selftrained"):
            assert len((out / f"{stage}/{split}.txt").read_text().splitlines()) == rows
    decision = json.loads((out / "selftrain/ctc/iter1/round.json").read_text())
    assert decision["round"] == 1 and decision["utterances"] == len(
        read_manifest(out / "manifest/train.tsv").rows)

    # the small encoder instead: only the CTC rounds and what follows them rerun
    config["selftrain"]["ctc_model"] = "small"
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    planned = planned_jobs(workdir)
    assert planned["ctc_train"] == 1 and "hmm_train" not in planned and "gan_train" not in planned
