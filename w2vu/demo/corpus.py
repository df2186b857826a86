"""`w2vu demo-corpus`: a small multi-speaker English corpus synthesised with espeak-ng.

The book's sentences are shuffled under the seed and cut into two disjoint halves: sentences of the
first are spoken (until the requested duration is reached), the second is the unpaired text. Each
utterance is split at commas and semicolons into phrases with silence between them, plus leading and
trailing silence and a faint noise floor, so that VAD has real work. Files are written as WAV, FLAC
and Ogg Vorbis at espeak's 22.05 kHz, so that conversion has real work too. Word and phone
references (phones from phonemizer's espeak backend, word by word as the lexicon will have them)
go into the audio table for scoring. The same seed gives the same corpus.
"""

from __future__ import annotations

import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from w2vu.demo.sentences import book_text, reference_words, split_sentences
from w2vu.demo.synth import Synthesizer, Voice
from w2vu.io.atomic import atomic_dir, write_text
from w2vu.io.tables import write_table
from w2vu.text.phonemize import phonemize_words

log = logging.getLogger(__name__)

# Variants f2, f3 and f5 add breath noise that differs from run to run; these reproduce exactly.
SPEAKERS = (
    Voice("en-us+m1", 165, 45), Voice("en-us+f1", 175, 62), Voice("en-gb-x-rp+m3", 150, 38),
    Voice("en+f4", 170, 66), Voice("en-us+m7", 185, 32), Voice("en-gb-scotland+f1", 160, 55),
    Voice("en-029+m2", 155, 50), Voice("en-us-nyc+f4", 180, 58),
)
FORMATS = (("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"))
NOISE_RMS = 3e-4
_PHRASE_BREAK = re.compile(r"(?<=[,;:])\s+")


@dataclass(frozen=True)
class CorpusSettings:
    """Target duration (minutes of audio including silence), seed and phonemizer language."""

    minutes: float = 10.0
    seed: int = 0
    language: str = "en-us"


def speak_utterance(synth: Synthesizer, sentence: str, voice: Voice,
                    rng: random.Random) -> np.ndarray:
    """Phrases of the sentence with silences between and around them, as float32 samples."""
    rate = synth.sample_rate

    def silence(low: float, high: float) -> np.ndarray:
        return np.zeros(int(rng.uniform(low, high) * rate), np.float32)

    parts = [silence(0.3, 1.0)]
    for i, phrase in enumerate(_PHRASE_BREAK.split(sentence)):
        if i:
            parts.append(silence(0.25, 0.7))
        parts.append(synth.speak(phrase, voice).astype(np.float32) / 32768)
    parts.append(silence(0.3, 1.0))
    audio = np.concatenate(parts)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, NOISE_RMS, len(audio))
    return (audio + noise).astype(np.float32)


def build_demo_corpus(out_dir: str | os.PathLike, out_table: str | os.PathLike,
                      out_text: str | os.PathLike, settings: CorpusSettings) -> int:
    """Write the audio folder, the audio table and the unpaired text; return utterances."""
    rng = random.Random(settings.seed)
    sentences = split_sentences(book_text())
    rng.shuffle(sentences)
    half = len(sentences) // 2
    spoken_pool, unpaired = sentences[:half], sentences[half:]
    synth = Synthesizer()
    target = settings.minutes * 60 * synth.sample_rate
    rows, total = [], 0
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for index, sentence in enumerate(spoken_pool):
            if total >= target:
                break
            speaker = SPEAKERS[index % len(SPEAKERS)]
            voice = Voice(speaker.name, speaker.rate + rng.randint(-10, 10),
                          speaker.pitch + rng.randint(-5, 5))
            audio = speak_utterance(synth, sentence, voice, rng)
            ext, fmt, subtype = FORMATS[index % len(FORMATS)]
            speaker_id = speaker.name.replace("+", "_")
            rel = Path(speaker_id) / f"utt{index:05d}.{ext}"
            (tmp / speaker_id).mkdir(exist_ok=True)
            sf.write(tmp / rel, audio, synth.sample_rate, format=fmt, subtype=subtype)
            rows.append({"path": os.path.relpath(out_dir / rel, Path(out_table).parent),
                         "speaker": speaker_id,
                         "transcript": reference_words(sentence)})
            total += len(audio)
    if total < target:
        log.warning("demo-corpus: the book's spoken half gave only %.1f min", total / 60 /
                    synth.sample_rate)
    words = sorted({w for row in rows for w in row["transcript"].split()})
    lexicon = phonemize_words(words, settings.language)
    for row in rows:
        row["phones"] = " ".join(lexicon[w] for w in row["transcript"].split() if lexicon[w])
    write_table(out_table, ("path", "speaker", "transcript", "phones"), rows)
    write_text(out_text, "".join(s + "\n" for s in unpaired))
    log.info("demo-corpus: %d utterances, %.1f min, %d speakers; %d unpaired sentences",
             len(rows), total / synth.sample_rate / 60, min(len(rows), len(SPEAKERS)),
             len(unpaired))
    return len(rows)
