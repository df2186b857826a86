"""A small espeak-ng corpus with phone references and MFCC features, for self-training tests.

The utterances come from the demo corpus builder (several voices, silences between phrases), run
through the CLI in its own process: espeak-ng keeps global state, and a second synthesiser in the
test process crashes the session's (conftest's `synth`). They are resampled to 16 kHz and turned
into 50 Hz MFCC (78-d, the demo's GAN-input features). The phone references are espeak's, so
they match the audio; `w2vu.selftrain.corrupt` turns them into pseudo-labels of a known error
rate. `unpaired_phone_sentences` gives the corpus's unpaired text as phones, for the phone LM.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from w2vu.audio.convert import to_mono_16k
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
    subprocess.run([sys.executable, "-m", "w2vu", "demo-corpus", "--out-dir", str(out_dir / "wav"),
                    "--out-table", str(table), "--out-text", str(text), "--minutes", str(minutes),
                    "--seed", str(seed)], check=True, capture_output=True, timeout=600)
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


def unpaired_phone_sentences(corpus, limit: int = 3000) -> list[str]:
    """The corpus's unpaired text (not the spoken sentences) as phones with <SIL> at the ends,
    keeping sentences whose phones are all in the dictionary (the reference's filtered LM)."""
    from w2vu.demo.sentences import reference_words
    from w2vu.io.dictionary import read_fairseq_dict
    from w2vu.text.phonemize import phonemize_words

    text_path = Path(corpus.features).parent / "text.txt"
    text = [reference_words(s) for s in text_path.read_text("utf-8").splitlines()[:limit]]
    text = [s for s in text if s]
    lexicon = phonemize_words(sorted({w for s in text for w in s.split()}), "en-us")
    known = set(read_fairseq_dict(corpus.dictionary))
    out = []
    for sentence in text:
        phones = " ".join(lexicon[w] for w in sentence.split()).split()
        if phones and all(p in known for p in phones):
            out.append("<SIL> " + " ".join(phones) + " <SIL>")
    return out
