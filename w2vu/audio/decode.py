"""Decode any common audio file to float32 samples, through soundfile or else ffmpeg.

soundfile (bundled libsndfile) reads wav, flac, ogg/vorbis, ogg/opus and mp3; ffmpeg, when
installed, covers the rest (m4a/aac, wma, webm, ...). Failures raise `UndecodableAudio` with a
reason fit for the rejects table.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

FFMPEG_TIMEOUT_S = 600


class UndecodableAudio(Exception):
    """The file is not audio that soundfile or ffmpeg can decode; the message says why."""


def ffmpeg_available() -> bool:
    """True when an `ffmpeg` program is on PATH."""
    return shutil.which("ffmpeg") is not None


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Let ffmpeg write a float WAV (native rate and channels) and read that back."""
    with tempfile.TemporaryDirectory(prefix="w2vu-ffmpeg-") as tmp:
        wav = Path(tmp) / "decoded.wav"
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vn",
               "-acodec", "pcm_f32le", "-f", "wav", str(wav)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UndecodableAudio(f"ffmpeg took longer than {FFMPEG_TIMEOUT_S} s") from None
        if done.returncode != 0 or not wav.exists():
            detail = done.stderr.strip().splitlines()[-1:] or ["no audio stream"]
            raise UndecodableAudio(f"ffmpeg cannot decode it: {detail[0]}")
        data, rate = sf.read(wav, dtype="float32", always_2d=True)
        return data, rate


def decode(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Return (samples [frames, channels] float32, sample rate); raise `UndecodableAudio`."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise UndecodableAudio(f"cannot read file: {e.strerror}") from None
    if size == 0:
        raise UndecodableAudio("empty file (0 bytes)")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        return data, rate
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        soundfile_reason = str(e).strip() or type(e).__name__
    except OSError as e:
        raise UndecodableAudio(f"cannot read file: {e.strerror}") from None
    if not ffmpeg_available():
        raise UndecodableAudio(
            f"not a format soundfile reads ({soundfile_reason}); install ffmpeg for more formats")
    try:
        return _decode_with_ffmpeg(path)
    except UndecodableAudio as e:
        raise UndecodableAudio(f"soundfile: {soundfile_reason}; {e}") from None
