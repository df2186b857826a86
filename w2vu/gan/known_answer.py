"""Known-answer GAN inputs: "audio" features built from real phone text, whose transcript is known.

Why: on real speech a flat PER curve cannot tell a broken trainer from hard features. Here the
right answer exists and the features are as easy (or as hard) as we choose, so the GAN's ability
to learn can be measured on its own.

The sentences of a phone text (``lm.phones.filtered.txt``) are shuffled under the seed and cut into
two disjoint parts. The first becomes the "audio": every phone class is a fixed random vector
(N(0, 1) entries, ``dim`` of them), each occurrence is held for ``frames_per_phone`` frames on
average (1 or 2 frames for 1.5, as pooled wav2vec-U segments are) and every frame gets its own
N(0, noise²) noise. ``<SIL>`` tokens of the sentence are spoken too, as the short pauses VAD
leaves. The second part is the unpaired text. Optionally the phone inventory is folded into
``phones`` classes, named after their most frequent member: phones are ranked by frequency in the
whole text and rank r joins class r mod ``phones`` (``interleave``: classes of similar frequency,
so that unigram counts alone cannot reveal the answer) or the r-th run of consecutive ranks
(``blocks``: very unequal classes, the easiest case for the GAN).

Written to ``out_dir`` in the fairseq layout the trainer reads: ``train.npy`` + ``train.lengths``,
``train.phn`` (references, no ``<SIL>``), ``train.km`` (wav2vec-U 2.0 stand-in targets: k-means of
the frames, each id written twice as for 100 Hz MFCC targets), ``lm.phones.filtered.txt``,
``dict.phn.txt``, the phone 4-gram ``lm.phones.filtered.04.arpa`` and ``known_answer.json``
(settings and counts).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.atomic import write_text
from w2vu.io.dictionary import SIL
from w2vu.io.features import FeatureWriter, write_unit_lines
from w2vu.io.lines import read_token_lines
from w2vu.text.ngram import estimate_arpa

LM_ORDER = 4
FOLDS = ("interleave", "blocks")


@dataclass(frozen=True)
class KnownAnswerSettings:
    """How the known-answer set is made; each field is a ``w2vu known-answer`` option."""

    phones: int = 0  # fold the inventory into this many classes (0: keep every phone)
    fold: str = "interleave"  # how: similar-frequency classes, or "blocks" of ranks (Zipf-like)
    frames_per_phone: float = 1.5  # mean frames per phone; ≥ 1
    noise: float = 0.5  # std of the per-frame noise (phone vectors have unit-variance entries)
    dim: int = 512
    audio_fraction: float = 0.5  # share of the sentences spoken; the rest is unpaired text
    km_clusters: int = 64  # stand-in .km targets for wav2vec-U 2.0 (0: no train.km)
    blind: bool = False  # control: one vector for every phone, so the features carry no answer
    seed: int = 0

    def check(self) -> None:
        """One-line errors naming the option, before any work."""
        if self.phones < 0 or self.phones == 1:
            raise W2vuError(f"--phones must be 0 (keep all) or at least 2, got {self.phones}")
        if self.fold not in FOLDS:
            raise W2vuError(f"--fold must be one of {', '.join(FOLDS)}, got {self.fold!r}")
        if self.frames_per_phone < 1:
            raise W2vuError(f"--frames-per-phone must be at least 1, got {self.frames_per_phone}")
        if self.noise < 0 or self.dim < 1 or self.km_clusters < 0:
            raise W2vuError("--noise and --km-clusters must be >= 0 and --dim >= 1")
        if not 0 < self.audio_fraction < 1:
            raise W2vuError(f"--audio-fraction must lie strictly between 0 and 1, got "
                            f"{self.audio_fraction}")


@dataclass(frozen=True)
class KnownAnswerPaths:
    """The files of one known-answer set (arguments of the trainer and the scorer)."""

    root: Path

    @property
    def features(self) -> Path:
        return self.root / "train"

    @property
    def phn(self) -> Path:
        return self.root / "train.phn"

    @property
    def km(self) -> Path:
        return self.root / "train.km"

    @property
    def text(self) -> Path:
        return self.root / "lm.phones.filtered.txt"

    @property
    def dictionary(self) -> Path:
        return self.root / "dict.phn.txt"

    @property
    def lm(self) -> Path:
        return self.root / f"lm.phones.filtered.0{LM_ORDER}.arpa"

    @property
    def summary(self) -> Path:
        return self.root / "known_answer.json"


def phone_classes(sentences: list[list[str]], count: int, fold: str = "interleave"
                  ) -> dict[str, str]:
    """Phone → class name (its most frequent member), from the phones' frequency ranks r.

    ``interleave``: class r mod ``count``, classes of similar frequency; ``blocks``: ``count``
    runs of consecutive ranks, classes as unequal as a Zipf law makes them.
    """
    freq = Counter(p for s in sentences for p in s if p != SIL)
    ranked = sorted(freq, key=lambda p: (-freq[p], p))
    if count == 0 or count >= len(ranked):
        return {p: p for p in ranked}
    size = -(-len(ranked) // count)
    if fold == "blocks":
        return {p: ranked[(r // size) * size] for r, p in enumerate(ranked)}
    return {p: ranked[r % count] for r, p in enumerate(ranked)}


def split_sentences(count: int, audio_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sentence indices: (spoken, unpaired), each in file order."""
    order = np.random.default_rng([seed, 1]).permutation(count)
    spoken = max(1, min(count - 1, round(count * audio_fraction)))
    return np.sort(order[:spoken]), np.sort(order[spoken:])


def frame_counts(n: int, mean: float, rng: np.random.Generator) -> np.ndarray:
    """Frames for each of ``n`` phones: floor(mean) or ceil(mean), averaging ``mean``."""
    low = math.floor(mean)
    return low + (rng.random(n) < mean - low).astype(np.int64)


def speak(ids: np.ndarray, vectors: np.ndarray, settings: KnownAnswerSettings,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T×D float32) of one phone-id sentence and the phone id of every frame."""
    frame_ids = np.repeat(ids, frame_counts(len(ids), settings.frames_per_phone, rng))
    noise = rng.standard_normal((len(frame_ids), settings.dim), dtype=np.float32)
    return vectors[frame_ids] + np.float32(settings.noise) * noise, frame_ids


def kmeans_ids(frames: np.ndarray, k: int, seed: int, sample: int = 8192,
               iterations: int = 15) -> np.ndarray:
    """Cluster id per frame: Lloyd's k-means fitted on a sample (the 2.0 aux targets' stand-in)."""
    rng = np.random.default_rng([seed, 2])
    fit = frames[np.sort(rng.choice(len(frames), min(sample, len(frames)), replace=False))]
    centroids = fit[rng.choice(len(fit), min(k, len(fit)), replace=False)].copy()
    for _ in range(iterations):
        ids = nearest(fit, centroids)
        for c in range(len(centroids)):
            members = fit[ids == c]
            if len(members):
                centroids[c] = members.mean(0)
    return np.concatenate([nearest(frames[a:a + sample], centroids)
                           for a in range(0, len(frames), sample)])


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the closest centroid (squared Euclidean) for every row of ``x``."""
    dist = (centroids * centroids).sum(1)[None, :] - 2 * x @ centroids.T
    return dist.argmin(1)


def draw_class_vectors(rng: np.random.Generator, count: int,
                       settings: KnownAnswerSettings) -> np.ndarray:
    """The fixed vector of each class (``count``×``dim``): the set's first draws from ``rng``."""
    vectors = rng.standard_normal((count, settings.dim)).astype(np.float32)
    if settings.blind:
        vectors[:] = vectors[0]
    return vectors


def oracle_generator_weight(root: str | os.PathLike, symbols: list[str], kernel: int,
                            margin: float = 20.0, wrong: float = 0.0,
                            seed: int = 0) -> np.ndarray:
    """A generator conv weight (V×dim×kernel) that already reads the known answer.

    Why: starting the GAN *at* the answer asks whether the answer is a point the training
    keeps; if even that start drifts away, no amount of search from a random start can be
    expected to end there. Starting *near* it (``wrong`` > 0) asks whether the adversarial
    signal points back to it. Least squares maps every class vector to a one-hot of its own phone
    scaled by ``margin``, on the centre tap (output frame t reads input frame t); with ``wrong``,
    that share of the phone classes (drawn under ``seed``) is mapped in a cycle, each to the next
    one's phone.
    """
    summary = json.loads(KnownAnswerPaths(Path(root)).summary.read_text(encoding="utf-8"))
    settings = KnownAnswerSettings(**summary["settings"])
    classes = sorted(summary["classes"]) + [SIL]
    vectors = draw_class_vectors(np.random.default_rng([settings.seed, 0]), len(classes),
                                 settings)
    if not 0.0 <= wrong <= 1.0:
        raise W2vuError(f"wrong = {wrong}: the share of mis-mapped classes must be in [0, 1]")
    heard = list(classes)
    cycle = np.random.default_rng([seed, 1]).permutation(len(classes) - 1)  # never <SIL>
    cycle = cycle[:round(wrong * (len(classes) - 1))]
    if len(cycle) > 1:
        for a, b in zip(cycle, np.roll(cycle, -1)):
            heard[a] = classes[b]
    target = np.zeros((len(classes), len(symbols)), dtype=np.float64)
    for i, name in enumerate(heard):
        target[i, symbols.index(name)] = margin
    mapping = np.linalg.lstsq(vectors.astype(np.float64), target, rcond=None)[0]
    weight = np.zeros((len(symbols), settings.dim, kernel), dtype=np.float32)
    weight[:, :, kernel // 2] = mapping.T
    return weight


def build_known_answer(phone_text: str | os.PathLike, out_dir: str | os.PathLike,
                       settings: KnownAnswerSettings) -> dict[str, object]:
    """Write a known-answer set from ``phone_text`` into ``out_dir``; returns its summary."""
    settings.check()
    sentences = [s for s in read_token_lines(phone_text, "phone text",
                                             "pass an lm.phones.filtered.txt") if s]
    if len(sentences) < 2:
        raise W2vuError(f"{phone_text}: needs at least 2 phone sentences, has {len(sentences)}")
    classes = phone_classes(sentences, settings.phones, settings.fold)
    folded = [[p if p == SIL else classes[p] for p in s] for s in sentences]
    spoken, unpaired = split_sentences(len(folded), settings.audio_fraction, settings.seed)
    symbols = sorted(set(classes.values())) + [SIL]
    index = {p: i for i, p in enumerate(symbols)}
    rng = np.random.default_rng([settings.seed, 0])
    vectors = draw_class_vectors(rng, len(symbols), settings)
    paths = KnownAnswerPaths(Path(out_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    text_counts = Counter(p for i in unpaired for p in folded[i] if p != SIL)
    frame_phones: list[np.ndarray] = []
    correct = 0
    with FeatureWriter(paths.features, dim=settings.dim) as writer:
        for i in spoken:
            frames, ids = speak(np.array([index[p] for p in folded[i]]), vectors, settings, rng)
            writer.append(frames)
            frame_phones.append(ids)
            correct += int((nearest(frames, vectors) == ids).sum())
    bounds = np.cumsum([0] + [len(f) for f in frame_phones])
    if settings.km_clusters:
        frames = np.load(paths.features.with_suffix(".npy"))
        km = kmeans_ids(frames, settings.km_clusters, settings.seed)
        write_unit_lines(paths.km, (np.repeat(km[a:b], 2)
                                    for a, b in zip(bounds[:-1], bounds[1:])))
    write_text(paths.phn, "".join(" ".join(p for p in folded[i] if p != SIL) + "\n"
                                  for i in spoken))
    write_text(paths.text, "".join(" ".join(folded[i]) + "\n" for i in unpaired))
    ordered = sorted(text_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    missing = sorted(set(classes.values()) - set(text_counts))
    write_text(paths.dictionary, "".join(f"{p} {n}\n" for p, n in ordered)
               + "".join(f"{p} 0\n" for p in missing) + f"{SIL} 0\n")
    estimate_arpa((" ".join(folded[i]) for i in unpaired), LM_ORDER, paths.lm)
    summary = {
        "settings": asdict(settings),
        "source": os.fspath(phone_text),
        "phones": len(symbols) - 1,
        "source_phones": len(classes),
        "classes": {c: sorted(p for p, k in classes.items() if k == c)
                    for c in sorted(set(classes.values()))},
        "spoken_sentences": len(spoken),
        "text_sentences": len(unpaired),
        "frames": int(bounds[-1]),
        "nearest_vector_frame_accuracy": correct / max(int(bounds[-1]), 1),
        "reference_phones": int(sum(len(folded[i]) - folded[i].count(SIL) for i in spoken)),
    }
    write_text(paths.summary, json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return summary
