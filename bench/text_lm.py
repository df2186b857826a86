"""Phone LM estimation: w2vu.text.ngram against KenLM's lmplz, time and peak memory.

Why: wav2vec-U trains its phone 4-gram (GAN model selection) on the whole phonemised text corpus,
and w2vu estimates it in numpy instead of lmplz. This measures both on the same phone text of 1M
and 10M tokens: espeak phones of the bundled book and LJSpeech's transcripts (when present in
../shared/data), with <SIL> inserted as prepare_text.sh does, shuffled and repeated with fresh
<SIL> draws (fixed seed) up to the size. Each estimation runs in a fresh process; lmplz is built
and cached by devkit/lmplz.py, and left out (with the reason) when it cannot be built.

Run: python bench/text_lm.py [--tokens 1000000 10000000] [--order 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit.lmplz import (  # noqa: E402 - needs the repository root on sys.path
    LmplzUnavailable,
    lmplz_binary,
    phone_lexicon,
    phone_sentences,
    run_lmplz,
    source_sentences,
    word_sentences,
)

import machine  # noqa: E402 - a sibling module (bench/ is the script's folder)

LJSPEECH = REPO.parent / "shared" / "data" / "text" / "ljspeech_metadata_all.csv"
# Runs in a fresh interpreter: its peak RSS is the estimator's (plus Python and numpy).
OURS = """
import json, sys, time
from devkit.memory import peak_rss_kb
from w2vu.text.ngram import estimate_arpa
before = peak_rss_kb()
start = time.perf_counter()
stats = estimate_arpa(sys.argv[1], int(sys.argv[2]), sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - start, "counts": stats.counts,
                  "rss_mb": peak_rss_kb() / 1024, "imports_mb": before / 1024}))
"""


def phone_corpus(tokens: int, seed: int) -> list[str]:
    """Phone sentences, shuffled and repeated with new <SIL> draws, cut at `tokens` phones."""
    words = word_sentences(source_sentences(LJSPEECH if LJSPEECH.exists() else None))
    lexicon = phone_lexicon(words)
    rng = random.Random(seed)
    out: list[str] = []
    count, draw = 0, 0
    while count < tokens:
        batch = phone_sentences(words, lexicon, seed=seed + draw)
        rng.shuffle(batch)
        for sentence in batch:
            out.append(sentence)
            count += len(sentence.split())
            if count >= tokens:
                break
        draw += 1
    return out


def run_ours(text: Path, order: int, arpa: Path) -> dict:
    """Estimate in a fresh process; its wall time, n-gram counts and peak RSS."""
    result = subprocess.run([sys.executable, "-c", OURS, str(text), str(order), str(arpa)],
                            capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--order", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--lmplz-memory", default="1G", help="lmplz -S (its sort memory)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(machine.describe())
    try:
        lmplz = lmplz_binary()
    except LmplzUnavailable as e:
        lmplz = None
        print(f"lmplz left out: {e}")
    corpus = phone_corpus(max(args.tokens), args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="w2vu-bench-lm-") as tmp:
        folder = Path(tmp)
        for tokens in args.tokens:
            text = folder / f"phones-{tokens}.txt"
            count, lines = 0, []
            for sentence in corpus:
                if count >= tokens:
                    break
                lines.append(sentence)
                count += len(sentence.split())
            text.write_text("".join(s + "\n" for s in lines), encoding="utf-8")
            ours = min((run_ours(text, args.order, folder / "ours.arpa")
                        for _ in range(args.repeats)), key=lambda r: r["seconds"])
            row = {"tokens": count, "sentences": len(lines), "counts": ours["counts"],
                   "ours_s": ours["seconds"], "ours_mb": ours["rss_mb"],
                   "imports_mb": ours["imports_mb"]}
            if lmplz is not None:
                ref = min((run_lmplz(lmplz, text, args.order, folder / "lmplz.arpa",
                                     memory=args.lmplz_memory) for _ in range(args.repeats)),
                          key=lambda r: r.seconds)
                same = (folder / "ours.arpa").read_bytes() == (folder / "lmplz.arpa").read_bytes()
                row |= {"lmplz_s": ref.seconds, "lmplz_mb": ref.peak_rss_mb, "identical": same}
            rows.append(row)
            print(json.dumps(row))
    print_table(rows, args)


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    """Times (best of the repeats) and peak RSS side by side, with ours/lmplz ratios."""
    print(f"\nphone {args.order}-gram, --discount_fallback, lmplz -S {args.lmplz_memory}, "
          f"best of {args.repeats}")
    header = ("tokens", "n-grams", "ours s", "lmplz s", "time ratio", "ours MB", "lmplz MB",
              "RSS ratio", "same ARPA")
    print(" | ".join(header))
    for r in rows:
        lmplz = "lmplz_s" in r
        cells = (f"{r['tokens']:,}", f"{sum(r['counts']):,}", f"{r['ours_s']:.2f}",
                 f"{r['lmplz_s']:.2f}" if lmplz else "-",
                 f"{r['ours_s'] / r['lmplz_s']:.2f}" if lmplz else "-",
                 f"{r['ours_mb']:.0f}", f"{r['lmplz_mb']:.0f}" if lmplz else "-",
                 f"{r['ours_mb'] / r['lmplz_mb']:.2f}" if lmplz else "-",
                 ("yes" if r["identical"] else "no") if lmplz else "-")
        print(" | ".join(cells))
    print(f"(ours MB includes {rows[0]['imports_mb']:.0f} MB of Python and numpy before "
          "estimating)")


if __name__ == "__main__":
    main()
