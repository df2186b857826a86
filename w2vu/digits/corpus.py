"""`w2vu digits-corpus`: digit-string utterances from the Free Spoken Digit Dataset's recordings.

FSDD holds isolated English digits (8 kHz, 50 takes of each digit per speaker). Spoken strings and
the unpaired text follow one ``grammar`` (see ``DigitGrammar``): ``chain`` (the default) draws
strings with word statistics, as many digits per speaker as it has takes, each digit taking that
speaker's recordings of it in turn; ``uniform`` shuffles each speaker's recordings and cuts them
into runs, every recording used once. With ``passes`` above 1 the train and valid speakers' takes
are spoken that many times over, in other strings with other pauses (the test speakers' once). A
string becomes one utterance: the recordings one after another with a pause between them, silence
before and after, and a faint noise floor under everything, so that VAD has real work. Utterances of
the ``test_speakers`` form the test split; of the other speakers', a ``valid_fraction`` goes to
valid and the rest to train (the audio table's `split` column). The unpaired text is ``text_lines``
strings of the same grammar, none of them a string that is spoken. Word and phone references go into
the audio table for scoring. The same inputs and settings give the same bytes.
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_dir, write_text
from w2vu.io.tables import read_table, write_table
from w2vu.text.phonemize import phonemize_words

log = logging.getLogger(__name__)

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GRAMMARS = ("chain", "uniform")
SAMPLE_RATE = 8000
NOISE_RMS = 1e-3  # about the recordings' own background level


@dataclass(frozen=True)
class DigitsSettings:
    """How utterances and the unpaired text are made; defaults are config/digits.yaml's."""

    seed: int = 0
    test_speakers: tuple[str, ...] = ("nicolas", "theo")
    valid_fraction: float = 0.1
    min_digits: int = 3
    max_digits: int = 6
    pause_seconds: tuple[float, float] = (0.05, 0.35)
    edge_seconds: tuple[float, float] = (0.2, 0.6)
    text_lines: int = 5000
    grammar: str = "chain"
    successor: float = 0.7
    passes: int = 1
    language: str = "en-us"

    def __post_init__(self) -> None:
        if not 1 <= self.min_digits <= self.max_digits:
            raise W2vuError(f"digits-corpus: need 1 <= min_digits <= max_digits, got "
                            f"{self.min_digits} and {self.max_digits}")
        if not 0 <= self.valid_fraction < 1:
            raise W2vuError(f"digits-corpus: valid_fraction must be in [0, 1), got "
                            f"{self.valid_fraction}")
        if self.grammar not in GRAMMARS:
            raise W2vuError(f"digits-corpus: grammar must be one of {', '.join(GRAMMARS)}, got "
                            f"{self.grammar!r}")
        if not 0 <= self.successor <= 1:
            raise W2vuError(f"digits-corpus: successor must be in [0, 1], got {self.successor}")
        if self.passes < 1:
            raise W2vuError(f"digits-corpus: passes must be 1 or more, got {self.passes}")


class DigitGrammar:
    """Which digit strings are likely, for the spoken strings and the unpaired text alike.

    ``uniform``: independent, equally likely digits. Every permutation of the ten words leaves
    that distribution unchanged, so distribution matching cannot tell "one" from "six": on
    known-answer features the GAN settles on a partial permutation (bench/RESULTS.md). ``chain``:
    the first digit weighted 1/rank, each next one the previous one's successor with probability
    ``successor`` and otherwise any digit (rank order and successors drawn under the seed), so the
    words' statistics tell them apart, as a language's do.
    """

    def __init__(self, settings: DigitsSettings, rng: random.Random) -> None:
        self.settings = settings
        self.order = list(WORDS)
        if settings.grammar == "chain":  # uniform draws nothing here: its corpus stays as it was
            rng.shuffle(self.order)
        self.first_weights = [1 / rank for rank in range(1, len(WORDS) + 1)]
        self.next_word = dict(zip(self.order, self.order[1:] + self.order[:1]))

    def string(self, rng: random.Random) -> list[str]:
        """One string of ``min_digits``-``max_digits`` digit words."""
        length = rng.randint(self.settings.min_digits, self.settings.max_digits)
        if self.settings.grammar == "uniform":
            return [rng.choice(WORDS) for _ in range(length)]
        words = rng.choices(self.order, self.first_weights)
        while len(words) < length:
            follow = rng.random() < self.settings.successor
            words.append(self.next_word[words[-1]] if follow else rng.choice(WORDS))
        return words


def read_recordings(fsdd: Path) -> dict[str, list[dict[str, str]]]:
    """FSDD's transcripts.tsv rows grouped by speaker, each speaker's in file-name order."""
    table = fsdd / "transcripts.tsv"
    if not table.is_file():
        raise W2vuError(f"digits-corpus: {table} not found; --fsdd must be the FSDD folder "
                        "holding transcripts.tsv and recordings/")
    by_speaker: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in read_table(table, required=("path", "speaker", "text")):
        if row["text"] not in WORDS:
            raise W2vuError(f"digits-corpus: {table}: {row['path']} has text {row['text']!r}, "
                            f"not a digit word ({', '.join(WORDS)})")
        by_speaker[row["speaker"]].append(row)
    return {s: sorted(rows, key=lambda r: r["path"]) for s, rows in sorted(by_speaker.items())}


def digit_runs(rows: list[dict[str, str]], settings: DigitsSettings, rng: random.Random,
               passes: int = 1) -> list[list[dict[str, str]]]:
    """The recordings, ``passes`` times over, shuffled and cut into runs of min..max digits (the
    last may be shorter)."""
    rows = list(rows) * passes
    rng.shuffle(rows)
    runs, start = [], 0
    while start < len(rows):
        length = rng.randint(settings.min_digits, settings.max_digits)
        runs.append(rows[start:start + length])
        start += length
    return runs


def grammar_runs(rows: list[dict[str, str]], grammar: DigitGrammar, rng: random.Random,
                 passes: int = 1) -> list[list[dict[str, str]]]:
    """Strings of the grammar, ``passes`` times as many digits as the speaker has takes (the last
    may be shorter); each digit takes the speaker's recordings of it in a shuffled cycle, so a
    digit drawn more often than the speaker has takes of it reuses them."""
    takes: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        takes[row["text"]].append(row)
    for pool in takes.values():
        rng.shuffle(pool)
    used: Counter[str] = Counter()
    runs, total, wanted = [], 0, len(rows) * passes
    while total < wanted:
        words = grammar.string(rng)[:wanted - total]
        runs.append([takes[w][used[w] % len(takes[w])] for w in words])
        used.update(words)
        total += len(words)
    return runs


def join_recordings(fsdd: Path, run: list[dict[str, str]], settings: DigitsSettings,
                    rng: random.Random) -> np.ndarray:
    """The run's recordings with pauses between and silence around them, noise under all."""

    def silence(bounds: tuple[float, float]) -> np.ndarray:
        return np.zeros(int(rng.uniform(*bounds) * SAMPLE_RATE), np.float32)

    parts = [silence(settings.edge_seconds)]
    for i, row in enumerate(run):
        if i:
            parts.append(silence(settings.pause_seconds))
        audio, rate = sf.read(fsdd / row["path"], dtype="float32")
        if rate != SAMPLE_RATE or audio.ndim != 1:
            raise W2vuError(f"digits-corpus: {fsdd / row['path']} is not 8 kHz mono")
        parts.append(audio)
    parts.append(silence(settings.edge_seconds))
    audio = np.concatenate(parts)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, NOISE_RMS, len(audio))
    return np.clip(audio + noise, -1, 1).astype(np.float32)


def unpaired_strings(grammar: DigitGrammar, spoken: set[str], rng: random.Random) -> list[str]:
    """``text_lines`` strings of the grammar (as words), none of them spoken."""
    settings = grammar.settings
    lines: list[str] = []
    for _ in range(settings.text_lines * 100):
        if len(lines) == settings.text_lines:
            return lines
        line = " ".join(grammar.string(rng))
        if line not in spoken:
            lines.append(line)
    raise W2vuError(f"digits-corpus: could not draw {settings.text_lines} unspoken digit "
                    "strings; raise max_digits or lower text_lines")


def build_digits_corpus(fsdd: str | os.PathLike, out_dir: str | os.PathLike,
                        out_table: str | os.PathLike, out_text: str | os.PathLike,
                        settings: DigitsSettings) -> int:
    """Write the audio folder, the audio table (with split column) and the unpaired text."""
    fsdd, out_dir = Path(fsdd), Path(out_dir)
    recordings = read_recordings(fsdd)
    missing = sorted(set(settings.test_speakers) - set(recordings))
    if missing:
        raise W2vuError(f"digits-corpus: test speaker(s) {', '.join(missing)} not in "
                        f"{fsdd / 'transcripts.tsv'} (speakers: {', '.join(recordings)})")
    if settings.grammar == "chain":  # checked before any audio is written
        for speaker, speaker_rows in recordings.items():
            lacking = sorted(set(WORDS) - {row["text"] for row in speaker_rows}, key=WORDS.index)
            if lacking:
                raise W2vuError(f"digits-corpus: speaker {speaker} has no recording of "
                                f"{', '.join(lacking)}; grammar chain needs every digit (use "
                                "grammar uniform, or list only complete speakers in "
                                "transcripts.tsv)")
    rng = random.Random(settings.seed)
    grammar = DigitGrammar(settings, rng)
    rows, samples = [], 0
    with atomic_dir(out_dir) as tmp:
        for speaker, speaker_rows in recordings.items():
            (tmp / speaker).mkdir()
            passes = 1 if speaker in settings.test_speakers else settings.passes
            runs = (grammar_runs(speaker_rows, grammar, rng, passes) if settings.grammar == "chain"
                    else digit_runs(speaker_rows, settings, rng, passes))
            for index, run in enumerate(runs):
                audio = join_recordings(fsdd, run, settings, rng)
                rel = Path(speaker) / f"{speaker}_{index:04d}.wav"
                sf.write(tmp / rel, audio, SAMPLE_RATE, subtype="PCM_16")
                if speaker in settings.test_speakers:
                    split = "test"
                else:
                    split = "valid" if rng.random() < settings.valid_fraction else "train"
                rows.append({"path": os.path.relpath(out_dir / rel, Path(out_table).parent),
                             "speaker": speaker, "split": split,
                             "transcript": " ".join(r["text"] for r in run)})
                samples += len(audio)
    lexicon = phonemize_words(list(WORDS), settings.language)
    for row in rows:
        row["phones"] = " ".join(lexicon[w] for w in row["transcript"].split())
    text = unpaired_strings(grammar, {row["transcript"] for row in rows}, rng)
    write_table(out_table, ("path", "speaker", "split", "transcript", "phones"), rows)
    write_text(out_text, "".join(line + "\n" for line in text))
    counts = {s: sum(row["split"] == s for row in rows) for s in ("train", "valid", "test")}
    log.info("digits-corpus: %d utterances (%s), %.1f min, %d speakers; %d unpaired strings",
             len(rows), ", ".join(f"{s} {n}" for s, n in counts.items()),
             samples / SAMPLE_RATE / 60, len(recordings), len(text))
    return len(rows)
