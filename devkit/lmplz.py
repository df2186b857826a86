"""KenLM's `lmplz`, built once from the kenlm sdist and cached, and corpora for LM parity checks.

Why: `lmplz` is the reference that `w2vu.text.ngram` must reproduce, and no package ships it. The
kenlm sdist on PyPI carries the whole C++ tree; building it needs cmake, a C++ compiler and the
Boost/Eigen/bz2/lzma dev packages (CI's .ci/run installs them; this helper never installs
anything). The binary is cached in `$W2VU_CACHE/kenlm-0.3.0` (default `~/.cache/w2vu/...`).
Used by tests/test_ngram.py, tests/test_lm.py and bench/text_lm.py.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devkit.memory import peak_rss_kb

KENLM_VERSION = "0.3.0"
APT_PACKAGES = ("libboost-program-options-dev libboost-system-dev libboost-thread-dev "
                "libboost-test-dev libeigen3-dev libbz2-dev liblzma-dev")
_STATS = re.compile(r"^(\d+) \d+(?:/\d+)? D1=(\S+) D2=(\S+) D3\+=(\S+)$", re.M)


class LmplzUnavailable(Exception):
    """lmplz could not be built or run here; the message says why."""


@dataclass(frozen=True)
class LmplzRun:
    """One lmplz run: wall time, peak RSS (sampled every 5 ms) and the discounts it printed."""

    seconds: float
    peak_rss_mb: float
    discounts: tuple[tuple[float, float, float], ...]


def cache_dir() -> Path:
    """Where the sdist and the built binary are kept between runs."""
    base = Path(os.environ.get("W2VU_CACHE", Path.home() / ".cache" / "w2vu"))
    return base / f"kenlm-{KENLM_VERSION}"


def lmplz_binary() -> Path:
    """A working lmplz, built on first use (about a minute); LmplzUnavailable if it cannot be."""
    root = cache_dir()
    binary = root / "bin" / "lmplz"
    if _works(binary):
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (test and bench may race)
        if not _works(binary):
            missing = [tool for tool in ("cmake", "make", "c++") if shutil.which(tool) is None]
            if missing:
                raise LmplzUnavailable(f"cannot build lmplz: {', '.join(missing)} not on PATH")
            _build(_download(root), binary)
    if not _works(binary):
        raise LmplzUnavailable(f"{binary} was built but does not run")
    return binary


def _works(binary: Path) -> bool:
    """Whether the binary starts (its shared Boost libraries may have been removed since)."""
    if not binary.is_file():
        return False
    result = subprocess.run([binary, "--help"], capture_output=True, text=True)
    return "Language model building options" in result.stderr


def _download(root: Path) -> Path:
    """The kenlm sdist, fetched with pip once.

    `--no-binary kenlm` rather than `:all:`: the latter also makes pip compile the sdist's build
    requirements (cmake itself) from source, which takes far longer than building lmplz.
    """
    sdist = root / f"kenlm-{KENLM_VERSION}.tar.gz"
    if not sdist.exists():
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "kenlm",
              "--disable-pip-version-check", f"kenlm=={KENLM_VERSION}", "-d", str(root)],
             "pip download of the kenlm sdist")
    return sdist


def _build(sdist: Path, binary: Path) -> None:
    """Configure and build only the lmplz target in a scratch folder, then move it into place."""
    with tempfile.TemporaryDirectory(dir=binary.parent.parent, prefix="build-") as scratch:
        with tarfile.open(sdist) as tar:
            tar.extractall(scratch, filter="data")
        source = Path(scratch) / f"kenlm-{KENLM_VERSION}"
        build = Path(scratch) / "build"
        _run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
             f"cmake configure of kenlm (needs apt packages: {APT_PACKAGES})")
        _run(["cmake", "--build", str(build), "--target", "lmplz", "-j", str(os.cpu_count() or 1)],
             "building lmplz")
        binary.parent.mkdir(exist_ok=True)
        staged = binary.with_suffix(".tmp")
        shutil.copy2(build / "bin" / "lmplz", staged)
        os.replace(staged, binary)


def _run(command: list[str], what: str) -> None:
    """Run a build step; on failure raise LmplzUnavailable with the end of its output."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise LmplzUnavailable(f"{what} failed (exit {result.returncode}):\n{tail}")


def run_lmplz(binary: Path, text: Path, order: int, arpa: Path,
              prune: tuple[int, ...] | None = None, memory: str = "1G") -> LmplzRun:
    """`lmplz -o order --discount_fallback [--prune ...]` on a text file; raises on failure."""
    command = [str(binary), "-o", str(order), "--discount_fallback", "-S", memory,
               "-T", str(arpa.parent), "--text", str(text), "--arpa", str(arpa)]
    if prune:
        command += ["--prune", *map(str, prune)]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        peak_kb = 0
        while process.poll() is None:
            peak_kb = max(peak_kb, peak_rss_kb(process.pid))
            time.sleep(0.005)
        seconds = time.perf_counter() - start
        log.seek(0)
        stderr = log.read()
    if process.returncode:
        raise RuntimeError(f"lmplz failed (exit {process.returncode}):\n{stderr[-2000:]}")
    printed = _STATS.findall(stderr)
    discounts = tuple((float(a), float(b), float(c)) for _, a, b, c in printed)
    return LmplzRun(seconds, peak_kb / 1024, discounts)


def source_sentences(ljspeech: Path | None = None) -> list[str]:
    """The bundled book's sentences, plus LJSpeech's normalised transcripts when given."""
    from w2vu.demo.sentences import book_text, split_sentences

    sentences = split_sentences(book_text())
    if ljspeech is not None and ljspeech.exists():
        with open(ljspeech, encoding="utf-8") as f:
            sentences += [line.rstrip("\n").split("|")[-1] for line in f]
    return sentences


def word_sentences(sentences: list[str]) -> list[str]:
    """Lower-cased words of each sentence (empty ones dropped)."""
    from w2vu.demo.sentences import reference_words

    return [w for w in map(reference_words, sentences) if w]


def phone_lexicon(sentences: list[str]) -> dict[str, list[str]]:
    """espeak phones (en-us, no stress) of every word type, phonemised once as a type list."""
    from phonemizer.backend import EspeakBackend
    from phonemizer.separator import Separator

    from w2vu.espeak import configure_phonemizer

    configure_phonemizer()
    backend = EspeakBackend("en-us", language_switch="remove-flags", with_stress=False,
                            words_mismatch="ignore")
    types = sorted({w for sentence in sentences for w in sentence.split()})
    phones = backend.phonemize(types, separator=Separator(phone=" ", word="", syllable=""),
                               strip=True, njobs=1)
    return {w: p.split() for w, p in zip(types, phones)}


def phone_sentences(sentences: list[str], lexicon: dict[str, list[str]], sil_prob: float = 0.25,
                    seed: int = 0) -> list[str]:
    """Phones of word sentences with <SIL> around them and, at random, between words.

    This mirrors wav2vec-U's phone LM text (prepare_text.sh: phonemize_with_sil.py).
    """
    rng = np.random.default_rng(seed)
    out = []
    for sentence in sentences:
        tokens = ["<SIL>"]
        for i, word in enumerate(sentence.split()):
            if i and rng.random() < sil_prob:
                tokens.append("<SIL>")
            tokens += lexicon[word]
        out.append(" ".join(tokens + ["<SIL>"]))
    return out
