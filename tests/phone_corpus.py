"""A small espeak-ng corpus with phone references and MFCC features, for self-training tests.

The utterances come from the demo corpus builder (several voices, silences between phrases), are
resampled to 16 kHz and turned into 50 Hz MFCC (78-d, the demo's GAN-input features). The phone
references are espeak's, so they match the audio; `w2vu.selftrain.corrupt` turns them into
pseudo-labels of a known error rate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from w2vu.audio.convert import to_mono_16k
from w2vu.demo.corpus import CorpusSettings, build_demo_corpus
from w2vu.features.mfcc import MfccBackbone
from w2vu.io.features import write_features
from w2vu.io.tables import read_table
from w2vu.text.phones import write_dictionary


@dataclass(frozen=True)
class PhoneCorpus:
    """Paths of one built corpus: features prefix, one reference phone line per utterance,
    the fairseq phone dictionary (with `<SIL>` last), the word references."""

    features: Path
    phn: Path
    wrd: Path
    dictionary: Path

    def reference_lines(self) -> list[list[str]]:
        return [line.split() for line in self.phn.read_text(encoding="utf-8").splitlines()]


def build_phone_corpus(out_dir: Path, minutes: float, seed: int = 0) -> PhoneCorpus:
    """Synthesise about ``minutes`` of speech and write features, references and dictionary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table, text = out_dir / "audio.tsv", out_dir / "text.txt"
    build_demo_corpus(out_dir / "wav", table, text, CorpusSettings(minutes=minutes, seed=seed))
    rows = read_table(table)
    backbone = MfccBackbone(stack=2)

    def features():
        for row in rows:
            data, rate = sf.read(table.parent / row["path"], dtype="float32", always_2d=True)
            yield backbone.features(to_mono_16k(data, rate))

    corpus = PhoneCorpus(out_dir / "feats", out_dir / "refs.phn", out_dir / "refs.wrd",
                         out_dir / "dict.phn.txt")
    write_features(corpus.features, features(), dim=backbone.dim)
    corpus.phn.write_text("".join(r["phones"] + "\n" for r in rows), encoding="utf-8")
    corpus.wrd.write_text("".join(r["transcript"] + "\n" for r in rows), encoding="utf-8")
    write_dictionary(corpus.dictionary, Counter(p for r in rows for p in r["phones"].split()))
    return corpus
