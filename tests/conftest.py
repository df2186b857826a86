"""Shared fixtures: speech synthesised with espeak-ng, signals with known silences, shared data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soxr

from w2vu.demo.synth import Synthesizer, Voice

REPO = Path(__file__).resolve().parent.parent
# The suite runs two workers on two cores, and many tests ask torch for two threads: OpenMP threads
# that spin while they wait then take the CPU the other worker needs (a CTC test beside a 2-thread
# torch job: 278 s spinning, 109 s passive; alone 71 s and 90 s). Passive waiting changes no
# result. Set before torch is imported anywhere in the suite (workers and workflow subprocesses
# inherit it); a job of the pipeline keeps the default, since Snakemake gives it its own cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SHARED_DATA = Path(os.environ.get("W2VU_SHARED_DATA", REPO.parent / "shared" / "data"))
PHRASES = (
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "Pride and prejudice.",
)
VOICES = (Voice("en-us+m1", 170, 50), Voice("en+f2", 150, 65), Voice("en-gb-scotland+m3", 190, 40))


@dataclass(frozen=True)
class Padded:
    """A signal made of speech chunks with inserted silence, and where the speech is (seconds)."""

    samples: np.ndarray
    rate: int
    speech: list[tuple[float, float]]


@pytest.fixture(scope="session")
def synth() -> Synthesizer:
    return Synthesizer()


def speech_chunk(synth: Synthesizer, text: str, voice: Voice) -> np.ndarray:
    """Synthesised speech with espeak's own leading and trailing silence cut off."""
    x = synth.speak(text, voice).astype(np.float32) / 32768
    loud = np.flatnonzero(np.abs(x) > 1e-3)
    return x[loud[0]: loud[-1] + 1]


def pad_with_silence(chunks: list[np.ndarray], rate: int, lead: float = 1.0, gap: float = 1.5,
                     noise: float = 1e-4, seed: int = 0) -> Padded:
    """Concatenate chunks with `lead` seconds before and `gap` seconds after each, plus noise."""
    parts = [np.zeros(int(lead * rate), np.float32)]
    t, speech = lead, []
    for chunk in chunks:
        speech.append((t, t + len(chunk) / rate))
        parts += [chunk, np.zeros(int(gap * rate), np.float32)]
        t += len(chunk) / rate + gap
    x = np.concatenate(parts)
    x += np.random.default_rng(seed).normal(0, noise, len(x)).astype(np.float32)
    return Padded(x, rate, speech)


def resampled(p: Padded, rate: int) -> Padded:
    """The same padded signal at another sample rate."""
    if rate == p.rate:
        return p
    return Padded(soxr.resample(p.samples, p.rate, rate).astype(np.float32), rate, p.speech)


@pytest.fixture(scope="session")
def padded_speech(synth: Synthesizer) -> list[Padded]:
    """One padded signal per test voice, three phrases each, at espeak's 22.05 kHz."""
    return [pad_with_silence([speech_chunk(synth, t, v) for t in PHRASES], synth.sample_rate)
            for v in VOICES]


def shared(*parts: str) -> Path:
    """A path under ../shared/data; the test is skipped when that data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path
