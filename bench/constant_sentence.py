"""The audio-blind baselines' search (`baseline_constant_sentence`, `baseline_constant_words`):
time and peak memory on natural text, against the search without sentence beginnings.

Why: the search runs once per split and language, on the whole unpaired text. It tries the text's
commonest sentences and commonest sentence beginnings against a sample of about 16,000 tokens;
the beginnings find the best constant where no common sentence is it (the digits text), and this
measures what they cost: the same search with sentences only (the first version) is the baseline,
run in the same process on the same files. Texts: the bundled book's sentences and, when present
in ../shared/data, LJSpeech's transcripts, as words and as espeak phones with <SIL> (the phone
LM's text); the digits texts of a finished workdir with --digits-workdir.

Run: python bench/constant_sentence.py [--sentences 20000] [--digits-workdir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit.lmplz import (  # noqa: E402 - needs the repository root on sys.path
    phone_lexicon,
    phone_sentences,
    source_sentences,
    word_sentences,
)
from devkit.memory import peak_rss_kb  # noqa: E402
from w2vu.eval import score  # noqa: E402

import machine  # noqa: E402 - a sibling module (bench/ is the script's folder)

LJSPEECH = REPO.parent / "shared" / "data" / "text" / "ljspeech_metadata_all.csv"


def timed_search(text: Path, beginnings: int) -> tuple[float, list[str]]:
    """Seconds and result of `constant_sentence` with this many beginnings tried."""
    saved = score.CONSTANT_BEGINNINGS
    score.CONSTANT_BEGINNINGS = beginnings
    try:
        start = time.perf_counter()
        sentence = score.constant_sentence(text)
        return time.perf_counter() - start, sentence
    finally:
        score.CONSTANT_BEGINNINGS = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=20000)
    parser.add_argument("--digits-workdir", type=Path,
                        help="a finished digits run: its phone and word texts are measured too")
    args = parser.parse_args()
    words = word_sentences(source_sentences(LJSPEECH if LJSPEECH.exists() else None))
    words = words[: args.sentences]
    with tempfile.TemporaryDirectory() as tmp:
        texts = {"words": Path(tmp) / "words.txt", "phones": Path(tmp) / "phones.txt"}
        texts["words"].write_text("".join(w + "\n" for w in words), encoding="utf-8")
        phones = phone_sentences(words, phone_lexicon(words))
        texts["phones"].write_text("".join(p + "\n" for p in phones), encoding="utf-8")
        if args.digits_workdir:
            root = args.digits_workdir / "results" / "digits" / "text"
            texts["digits phones"] = root / "phones" / "lm.phones.filtered.txt"
            texts["digits words"] = root / "normalized.txt"
        print(machine.describe())
        print(f"{'text':14}{'sentences':>10}{'tokens':>10}{'search s':>10}{'sentences only s':>18}"
              f"{'ratio':>7}  found")
        for name, path in texts.items():
            lines = path.read_text(encoding="utf-8").splitlines()
            tokens = sum(len(line.split()) for line in lines)
            ours, found = timed_search(path, score.CONSTANT_BEGINNINGS)
            base, _ = timed_search(path, 0)
            shown = " ".join(found[:8]) + (" ..." if len(found) > 8 else "")
            print(f"{name:14}{len(lines):10d}{tokens:10d}{ours:10.2f}{base:18.2f}"
                  f"{ours / base:6.2f}x  {shown}")
        print(f"peak RSS of this process: {peak_rss_kb() / 1024:.0f} MB")


if __name__ == "__main__":
    main()
