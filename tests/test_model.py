"""The model folder's pieces that need no workflow run: input listing, folder checks and the
Hugging Face export of a fine-tuned backbone (a tiny random wav2vec 2.0 model, tone audio).

The whole chain (rule `model`, `w2vu transcribe` reproducing the run) is tested on the demo run in
tests/test_workflow_demo.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.tiny_models import one_torch_thread, tiny_model
from w2vu.errors import W2vuError
from w2vu.io.manifest import write_manifest
from w2vu.model import folder as layout
from w2vu.model.export_hf import export_hf
from w2vu.model.folder import ModelFolder, load_model
from w2vu.model.transcribe import list_inputs
from w2vu.selftrain.ctc.finetune import FinetunedCtc, ManifestAudio
from w2vu.selftrain.ctc.transcribe import transcribe_ctc

VOCAB = ["<s>", "<pad>", "</s>", "<unk>", "a", "b", "c", "d", "<SIL>"]
RECIPE = {"audio": {"min_seconds": 0.5, "max_seconds": 120, "extensions": ["wav"], "vad": {},
                    "trim": {}},
          "features": {"backbone": "model", "mfcc_stack": 2, "layer": 3, "normalize": "auto",
                       "cluster_unnormalized": False, "batch_seconds": 0, "max_chunk_seconds": 30,
                       "pca_dim": 16, "clusters": 8, "kmeans_backend": "sklearn",
                       "bf16": True, "tf32": True},
          "gan": {"variant": 1, "decode_stride": None},
          "selftrain": {"hmm_features": "pca", "ctc_lm_decode": False, "ctc_finetune": True}}


def write_model(root: Path, kind: str, files: list[str]) -> ModelFolder:
    info = {"format": layout.FORMAT, "system": {"kind": kind}, "recipe": RECIPE,
            "files": files}
    root.mkdir(parents=True, exist_ok=True)
    (root / layout.MODEL_JSON).write_text(json.dumps(info))
    return load_model(root)


def test_inputs_are_files_folders_and_lists_in_order_once(tmp_path):
    (tmp_path / "in/sub").mkdir(parents=True)
    for name in ("in/b.wav", "in/sub/a.WAV", "in/notes.txt", "c.wav"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.tsv").write_text("path\nc.wav\nin/b.wav\n")
    paths, missing = list_inputs([str(tmp_path / "c.wav"), str(tmp_path / "in"),
                                  str(tmp_path / "list.tsv"), str(tmp_path / "gone.wav")],
                                 ["wav"])
    assert paths == [str(tmp_path / p) for p in ("c.wav", "in/b.wav", "in/sub/a.WAV")]
    assert [(m.path, m.error) for m in missing] == [(str(tmp_path / "gone.wav"),
                                                     "file not found")]


def test_a_folder_that_is_not_a_whole_model_is_named(tmp_path):
    with pytest.raises(W2vuError, match="no model.json here"):
        load_model(tmp_path)
    with pytest.raises(W2vuError, match="missing ctc.pt; copy the whole model folder"):
        write_model(tmp_path / "m", "ctc", [layout.CTC])


def test_export_refuses_systems_without_a_hugging_face_equivalent(tmp_path):
    model = write_model(tmp_path / "gan", "gan", [])
    with pytest.raises(W2vuError, match="GAN generator on pooled PCA features"):
        export_hf(model, tmp_path / "hf")
    small = {**RECIPE, "selftrain": {**RECIPE["selftrain"], "ctc_finetune": False}}
    (tmp_path / "gan" / layout.MODEL_JSON).write_text(json.dumps(
        {"format": layout.FORMAT, "system": {"kind": "ctc"}, "recipe": small, "files": []}))
    with pytest.raises(W2vuError, match="small CTC encoder"):
        export_hf(load_model(tmp_path / "gan"), tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def tone_audio(folder: Path, count: int) -> Path:
    """Utterances of random tones at 16 kHz and their manifest."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        t = np.arange(int(0.1 * 16000)) / 16000
        wave = np.concatenate([0.5 * np.sin(2 * np.pi * f * t)
                               for f in rng.choice([300.0, 700.0, 1300.0, 2100.0], size=8)])
        wave = (wave + 0.01 * rng.standard_normal(len(wave))).astype(np.float32)
        sf.write(folder / f"u{i}.wav", wave, 16000, subtype="FLOAT")
        rows.append((f"u{i}.wav", len(wave)))
    write_manifest(folder / "test.tsv", folder, rows)
    return folder / "test.tsv"


def test_exported_folder_gives_the_same_phones_in_a_transformers_pipeline(tmp_path):
    """A fine-tuned backbone (random head, the fairseq specials never predicted, as after CTC
    training on phone labels) exported and run through `transformers.pipeline` gives the phones
    `w2vu` transcribes."""
    from transformers import pipeline

    with one_torch_thread():
        torch.manual_seed(0)
        ctc = FinetunedCtc(tiny_model(stable=True), len(VOCAB), normalize=True)
        with torch.no_grad():
            ctc.head.weight.mul_(20.0)
            ctc.head.bias[1:4] = -1e4
        model_dir = tmp_path / "model"
        model_dir.mkdir()
        torch.save(ctc.record(tuple(VOCAB)), model_dir / layout.CTC)
        (model_dir / layout.DICTIONARY).write_text("".join(f"{p} 1\n" for p in VOCAB[4:]))
        model = write_model(model_dir, "ctc", [layout.CTC])
        manifest = tone_audio(tmp_path, 4)
        expected = transcribe_ctc(model_dir / layout.CTC, ManifestAudio(manifest),
                                  model_dir / layout.DICTIONARY, tmp_path / "w2vu.txt",
                                  device="cpu")
        out = export_hf(model, tmp_path / "hf")
        asr = pipeline("automatic-speech-recognition", model=str(out), device="cpu")
        waves = [sf.read(tmp_path / f"u{i}.wav", dtype="float32")[0] for i in range(4)]
        got = [asr({"raw": w, "sampling_rate": 16000})["text"] for w in waves]
    assert got == [" ".join(line) for line in expected]
    assert len(set(got)) > 1 and all(got)
    assert json.loads((out / "w2vu_model.json").read_text())["recipe"] == RECIPE


def write_round(folder: Path, number: int, best: int | None, score: float) -> Path:
    """A round.json as ctc-judge writes it (and the model file the round left)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(b"")
    decision = {"round": number, "score": score, "lm_ppl": 9.0, "error_rate": 0.3,
                "previous_best": None, "keep": best == number, "best_round": best,
                "best_score": score, "labels": "l", "transcripts": "t", "utterances": 3}
    (folder / "round.json").write_text(json.dumps(decision))
    return folder / "round.json"


def test_system_is_what_the_run_ended_with_unless_chosen(tmp_path):
    from w2vu.model.assemble import RunFiles, choose_system

    (tmp_path / "selected.json").write_text(json.dumps(
        {"selected": {"name": "seed1", "metrics": {"score": 1.5}}}))
    hmm = write_round(tmp_path / "ctc/iter0", 0, 0, 2.0)
    write_round(tmp_path / "ctc/iter1", 1, 1, 1.8)
    last = write_round(tmp_path / "ctc/iter2", 2, 1, 1.9)
    files = RunFiles(*(tmp_path for _ in range(4)), tmp_path / "selected.json",
                     hmm_model=tmp_path, hmm_decision=hmm, ctc_rounds=tmp_path / "ctc",
                     ctc_decision=last)
    auto = choose_system(files, "auto")
    assert (auto.kind, auto.stage, auto.final_stage, auto.ctc_round) == ("ctc", "ctc_iter1",
                                                                         "selftrained", 1)
    assert auto.unsupervised["score"] == 1.8
    assert choose_system(files, "ctc_iter2").unsupervised["kept"] is False
    assert choose_system(files, "hmm").unsupervised["score"] == 2.0
    assert choose_system(files, "gan").unsupervised["score"] == 1.5
    words = choose_system(files, "gan_words")
    assert (words.kind, words.stage, words.unsupervised["score"]) == ("gan_words",
                                                                      "gan_wfst_phones", 1.5)
    none_kept = write_round(tmp_path / "none/iter1", 1, None, float("inf"))
    fallback = choose_system(RunFiles(*(tmp_path for _ in range(4)), tmp_path / "selected.json",
                                      hmm_model=tmp_path, ctc_decision=none_kept), "auto")
    assert (fallback.kind, fallback.final_stage) == ("hmm", "selftrained")
    with pytest.raises(W2vuError, match="ctc_iter3: .* no finished round"):
        choose_system(files, "ctc_iter3")
    with pytest.raises(W2vuError, match="not auto, gan, gan_words, hmm or ctc_iter<N>"):
        choose_system(files, "ctc")
