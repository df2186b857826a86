"""Speech synthesis through libespeak-ng's C API (ctypes), no espeak-ng program needed.

espeak-ng keeps global state, so one `Synthesizer` per process; it is not thread-safe. That state
also carries from one utterance to the next (and survives re-initialisation), so the same sequence
of calls gives the same audio only from a fresh process: build a corpus in a process of its own.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from w2vu.errors import W2vuError
from w2vu.espeak import espeak_library

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
PARAM_RATE = 1
PARAM_PITCH = 3
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice with variant (e.g. `en-us+f3`), rate (words/min), pitch (0-99)."""

    name: str
    rate: int
    pitch: int


class Synthesizer:
    """Text to 16-bit samples at the library's native rate (22.05 kHz)."""

    def __init__(self) -> None:
        lib_info = espeak_library()
        self._lib = ctypes.CDLL(lib_info.library)
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                                ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                           ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                           ctypes.c_void_p, ctypes.c_void_p]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        data = lib_info.data.encode() if lib_info.data else None
        self.sample_rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise W2vuError(f"espeak-ng failed to initialise ({lib_info.library})")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), count: int, _events: int) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def speak(self, text: str, voice: Voice) -> np.ndarray:
        """Synthesise `text`; return int16 samples."""
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise W2vuError(f"espeak-ng has no voice {voice.name!r}")
        self._lib.espeak_SetParameter(PARAM_RATE, voice.rate, 0)
        self._lib.espeak_SetParameter(PARAM_PITCH, voice.pitch, 0)
        self._chunks = []
        encoded = text.encode("utf-8")
        status = self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0,
                                        ESPEAK_CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if status != 0:
            raise W2vuError(f"espeak-ng could not synthesise {text[:40]!r} (status {status})")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
