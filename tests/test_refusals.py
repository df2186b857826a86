"""Poisoned model and checkpoint files: refused without running their payload, with one line on
stderr (exit status 2) that never advises loading the file unsafely."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.test_gan_trainer import data  # noqa: F401 - fixture
from tests.tiny_models import save_hf, tiny_model
from w2vu.cli import main
from w2vu.errors import W2vuError
from w2vu.eval.probe import load_probe


class _RunsCommand:
    """What a malicious file embeds: unpickling it would run a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def w2vu(capfd, *args: str | Path) -> tuple[int, str]:
    """Exit status and stderr of the `w2vu` command (in this process: torch loads once)."""
    capfd.readouterr()
    status = main([str(a) for a in args])
    return status, capfd.readouterr().err


def assert_refused(status: int, stderr: str, path: Path, marker: Path) -> None:
    """Exit status 2, no traceback, one ERROR line naming the file and the refused callable,
    nothing ran."""
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert status == 2, stderr
    assert "Traceback" not in stderr and len(errors) == 1, stderr
    assert str(path) in errors[0] and re.search(r"(posix|os)\.system", errors[0]), errors[0]
    assert "weights_only" not in stderr and "will likely succeed" not in stderr
    assert not marker.exists()


def poisoned(path: Path, marker: Path, payload: dict | None = None) -> Path:
    torch.save({**(payload or {}), "state": _RunsCommand(f"touch '{marker}'")}, path)
    return path


def test_poisoned_probe_is_refused_in_one_line(tmp_path, capfd):
    marker = tmp_path / "pwned"
    evil = poisoned(tmp_path / "evil.pt", marker)
    status, err = w2vu(capfd, "probe-decode", "--probe", evil, "--features", tmp_path / "valid",
                       "--phn", tmp_path / "valid.phn", "--dictionary", tmp_path / "dict.phn.txt",
                       "--out", tmp_path / "out.txt")
    assert_refused(status, err, evil, marker)


def test_poisoned_gan_checkpoint_is_refused_in_one_line(tmp_path, capfd):
    marker = tmp_path / "pwned"
    evil = poisoned(tmp_path / "best.pt", marker, {"variant": 1})
    status, err = w2vu(capfd, "gan-generate", "--checkpoint", evil, "--features",
                       f"1={tmp_path / 'x'}", "--dictionary", tmp_path / "dict.phn.txt",
                       "--out-dir", tmp_path / "out", "--split", "valid")
    assert_refused(status, err, evil, marker)


def test_hugging_face_folder_with_a_poisoned_pickle_is_refused_in_one_line(tmp_path, capfd):
    marker = tmp_path / "pwned"
    model = tiny_model(stable=True)
    folder = save_hf(model, tmp_path / "hf")
    (folder / "model.safetensors").unlink()
    poisoned(folder / "pytorch_model.bin", marker, dict(model.state_dict()))
    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(16000, np.float32), 16000)
    manifest = tmp_path / "train.tsv"
    manifest.write_text(f"{tmp_path}\na.wav\t16000\n")
    status, err = w2vu(capfd, "extract", "--manifest", manifest, "--backbone", folder,
                       "--layer", "1", "--device", "cpu", "--out-prefix", tmp_path / "feats")
    assert_refused(status, err, folder, marker)


def test_gan_training_does_not_resume_from_a_poisoned_rolling_checkpoint(tmp_path, capfd,
                                                                        data):  # noqa: F811
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    evil = poisoned(run / "checkpoint_last.pt", marker, {"update": 1})
    status, err = w2vu(capfd, "gan-train", "--features", data.features, "--text", data.text,
                       "--dictionary", data.dictionary, "--lm", data.lm, "--out-dir", run,
                       "--max-updates", "2", "--batch-size", "4", "--device", "cpu")
    assert_refused(status, err, evil, marker)


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04torn"])
def test_torn_files_name_torch_reason_in_one_line(tmp_path, content):
    path = tmp_path / "probe.pt"
    path.write_bytes(content)
    with pytest.raises(W2vuError) as caught:
        load_probe(path)
    assert str(caught.value).startswith(f"{path}: cannot read the probe (")
    assert "\n" not in str(caught.value) and "weights_only" not in str(caught.value)
