"""CTC fine-tuning of a whole SSL backbone on audio (tiny random wav2vec 2.0 models, tone audio)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.tiny_models import one_torch_thread, save_fairseq, save_hf, tiny_model
from w2vu.errors import W2vuError
from w2vu.eval.metrics import score_lines
from w2vu.io.features import open_features
from w2vu.io.manifest import write_manifest
from w2vu.selftrain.ctc.finetune import (
    REFERENCE_MASK,
    FinetuneSettings,
    ManifestAudio,
    build_finetune_model,
    finetune_config,
    finetune_ctc,
)
from w2vu.selftrain.ctc.transcribe import load_ctc_model, transcribe_ctc

PHONES = ["a", "b", "c", "d"]
TONES = {"a": 300.0, "b": 700.0, "c": 1300.0, "d": 2100.0}  # Hz, one per phone
RATE = 16_000


def tone_corpus(folder: Path, name: str, count: int, seed: int) -> list[list[str]]:
    """Utterances of 6 phones, each phone a 120 ms tone of its own pitch; a manifest and the
    line-aligned labels `{name}.tsv`, `{name}.txt`."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(count):
        seq = [str(p) for p in rng.choice(PHONES, size=6)]
        t = np.arange(int(0.12 * RATE)) / RATE
        wave = np.concatenate([0.5 * np.sin(2 * np.pi * TONES[p] * t) for p in seq])
        wave = (wave + 0.01 * rng.standard_normal(len(wave))).astype(np.float32)
        sf.write(folder / f"{name}{i}.wav", wave, RATE, subtype="FLOAT")
        rows.append((f"{name}{i}.wav", len(wave)))
        labels.append(seq)
    write_manifest(folder / f"{name}.tsv", folder, rows)
    (folder / f"{name}.txt").write_text("".join(" ".join(x) + "\n" for x in labels))
    return labels


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finetune")
    with one_torch_thread():
        model = tiny_model(stable=True)
        save_hf(model, folder / "hf")
        save_fairseq(model, folder / "model.pt", era="dict")
        save_hf(tiny_model(stable=False, seed=1), folder / "hf_base")
    tone_corpus(folder, "train", 12, seed=0)
    tone_corpus(folder, "test", 4, seed=1)
    (folder / "dict.phn.txt").write_text("".join(f"{p} 1\n" for p in PHONES) + "<SIL> 0\n")
    return folder


def quick_config(**overrides):
    """Small batches of tone audio, no masking, a learning rate a random backbone can use."""
    base = dict(lr=3e-3, max_updates=400, max_frames=6 * RATE, validate_every=100,
                checkpoint_every=100, log_every=50, mask=None, valid_fraction=0.0)
    return finetune_config(**{**base, **overrides})


def test_finetuned_backbone_transcribes_unseen_audio(corpus, tmp_path):
    """Fine-tuning a (random) backbone with CTC learns the tone-to-phone map: held-out
    utterances come out almost error-free, greedy, with emissions at the backbone's frame rate;
    the convolutional feature encoder stays as pretrained, the transformer moves."""
    with one_torch_thread():
        model_path = finetune_ctc(corpus / "train.tsv", corpus / "train.txt",
                                  corpus / "dict.phn.txt", corpus / "hf", tmp_path / "run",
                                  quick_config(), seed=1, device="cpu")
        hyps = transcribe_ctc(model_path, ManifestAudio(corpus / "test.tsv"),
                              corpus / "dict.phn.txt", tmp_path / "test.txt",
                              emissions_prefix=tmp_path / "emissions", device="cpu")
    refs = [line.split() for line in (corpus / "test.txt").read_text().splitlines()]
    assert score_lines(hyps, refs).rate < 0.1
    assert (tmp_path / "test.txt").read_text().splitlines() == [" ".join(h) for h in hyps]

    model, record = load_ctc_model(model_path)
    audio = ManifestAudio(corpus / "test.tsv")
    emissions = open_features(tmp_path / "emissions")
    assert emissions.dim == len(record["vocabulary"]) == 9  # 4 specials, 4 phones, <SIL>
    assert emissions.lengths.tolist() == model.output_lengths(torch.as_tensor(audio.lengths)
                                                              ).tolist()
    pretrained = build_finetune_model(corpus / "hf", 9, FinetuneSettings(), None).state_dict()
    tuned = model.state_dict()
    cnn = [k for k in tuned if k.startswith("backbone.feature_extractor.")]
    encoder = [k for k in tuned if k.startswith("backbone.encoder.layers.")]
    assert cnn and all(torch.equal(tuned[k], pretrained[k]) for k in cnn)
    assert any(not torch.equal(tuned[k], pretrained[k]) for k in encoder)


def test_interrupted_finetuning_resumes_bit_exactly(corpus, tmp_path):
    """With every random thing on (time and channel masks, layerdrop, dropout) and a group-norm
    backbone: stopped at update 5 and resumed, the weights equal an uninterrupted run's."""
    config = quick_config(max_updates=10, checkpoint_every=3, validate_every=4,
                          mask=replace(REFERENCE_MASK, channel_length=8), valid_fraction=0.2)
    args = (corpus / "train.tsv", corpus / "train.txt", corpus / "dict.phn.txt",
            corpus / "hf_base")
    with one_torch_thread():
        whole = finetune_ctc(*args, tmp_path / "whole", config, seed=3, device="cpu")
        assert finetune_ctc(*args, tmp_path / "parts", config, seed=3, device="cpu",
                            stop_after=5) is None
        assert not (tmp_path / "parts/model.pt").exists()
        parts = finetune_ctc(*args, tmp_path / "parts", config, seed=3, device="cpu")
    a, b = load_ctc_model(whole)[0].state_dict(), load_ctc_model(parts)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "whole/metrics.tsv").read_text() == \
        (tmp_path / "parts/metrics.tsv").read_text()


def test_fairseq_checkpoint_and_hf_folder_give_the_same_start(corpus):
    """The same pretrained weights from either format, and every block of them (feature
    extraction cuts the model at a layer; fine-tuning must not)."""
    settings = FinetuneSettings()
    with one_torch_thread():
        from_hf = build_finetune_model(corpus / "hf", 9, settings, REFERENCE_MASK)
        from_pt = build_finetune_model(corpus / "model.pt", 9, settings, REFERENCE_MASK)
    a, b = from_hf.backbone.state_dict(), from_pt.backbone.state_dict()  # the head is new
    assert a.keys() == b.keys() and len(a) > 50
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)
    assert from_hf.backbone.config.num_hidden_layers == 4
    assert from_hf.normalize and from_pt.normalize


def test_saved_model_rebuilds_without_the_pretrained_files(corpus, tmp_path):
    with one_torch_thread():
        model = build_finetune_model(corpus / "hf", 9, FinetuneSettings(), None).eval()
        torch.save(model.record(("<s>", "<pad>", "</s>", "<unk>", *PHONES, "<SIL>")),
                   tmp_path / "m.pt")
        again, _ = load_ctc_model(tmp_path / "m.pt")
        x = torch.randn(2, 8000, 1)
        mask = torch.zeros(2, 8000, dtype=torch.bool)
        mask[1, 5000:] = True
        torch.testing.assert_close(again(x, mask)[0], model(x, mask)[0])


def test_bad_inputs_get_clear_errors(corpus, tmp_path):
    lines = (corpus / "train.tsv").read_text().splitlines()
    rel, count = lines[2].split("\t")
    (tmp_path / "bad.tsv").write_text("\n".join([*lines[:2], f"{rel}\t{int(count) + 7}",
                                                 *lines[3:]]) + "\n")
    audio = ManifestAudio(tmp_path / "bad.tsv")
    with pytest.raises(W2vuError, match=rf"{rel} has {count} samples but .*bad.tsv row 3"):
        audio[1]
    short = tmp_path / "short.txt"
    short.write_text("a b\n")
    with pytest.raises(W2vuError, match="has 1 lines but .*train.tsv lists 12"):
        finetune_ctc(corpus / "train.tsv", short, corpus / "dict.phn.txt", corpus / "hf",
                     tmp_path / "run", quick_config(max_updates=1), device="cpu")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "w2vu", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_finetunes_and_transcribes_a_manifest(corpus, tmp_path):
    common = ["--labels", str(corpus / "train.txt"), "--dictionary", str(corpus / "dict.phn.txt"),
              "--out-dir", str(tmp_path / "run"), "--device", "cpu", "--threads", "1"]
    done = cli("ctc-train", "--manifest", str(corpus / "train.tsv"), "--init",
               str(corpus / "hf"), "--max-updates", "3", "--max-epochs", "0",
               "--batch-seconds", "4", *common)
    assert done.returncode == 0, done.stderr
    assert "fine-tuning" in done.stderr and (tmp_path / "run/model.pt").is_file()
    assert (tmp_path / "run/metrics.tsv").read_text().splitlines()[-1].startswith("3\t")
    done = cli("ctc-transcribe", "--model", str(tmp_path / "run/model.pt"), "--manifest",
               str(corpus / "test.tsv"), "--dictionary", str(corpus / "dict.phn.txt"),
               "--out", str(tmp_path / "test.txt"), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "test.txt").read_text().splitlines()) == 4

    wrong = cli("ctc-train", "--features", str(tmp_path / "x"), "--init", str(corpus / "hf"),
                *common)
    assert wrong.returncode == 2 and "pass the split's --manifest" in wrong.stderr
