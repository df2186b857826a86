"""One place that locates the espeak-ng library: the `espeakng-loader` wheel, else the system's.

The wheel needs no root and pins the espeak-ng version (and so the phone inventory) across
machines; a system libespeak-ng is accepted when the wheel is absent.
"""

from __future__ import annotations

import ctypes.util
import functools
from dataclasses import dataclass

from w2vu.errors import W2vuError


@dataclass(frozen=True)
class EspeakLibrary:
    """Path of the shared library and of its data folder (None: the library's built-in default)."""

    library: str
    data: str | None


@functools.cache
def espeak_library() -> EspeakLibrary:
    """Find libespeak-ng, preferring the espeakng-loader wheel."""
    try:
        import espeakng_loader
    except ImportError:
        found = ctypes.util.find_library("espeak-ng")
        if not found:
            raise W2vuError("espeak-ng not found: `pip install espeakng-loader` "
                            "or `apt-get install espeak-ng`") from None
        return EspeakLibrary(found, None)
    return EspeakLibrary(espeakng_loader.get_library_path(), espeakng_loader.get_data_path())


@functools.cache
def configure_phonemizer() -> None:
    """Point phonemizer's espeak backend at the library chosen by `espeak_library`."""
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    lib = espeak_library()
    EspeakWrapper.set_library(lib.library)
    if lib.data:
        EspeakWrapper.set_data_path(lib.data)
