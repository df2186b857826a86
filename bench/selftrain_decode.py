"""WFST (HLG) decoding of generator emissions against Viterbi argmax decoding: speed and memory.

Why: LM decoding (w2vu.decode.wfst, the reference's KALDI decoder) runs once per tuning grid point
on a whole split, so its speed decides how large a grid is affordable; the Viterbi decoding of
w2vu.gan.generate (frame argmax, repeats merged) of the same emissions is the baseline.

Setup (fixed seed): word sentences of the bundled book (plus LJSpeech's transcripts when present in
../shared/data), espeak phones (en-us) as lexicon, a word n-gram from w2vu.text.ngram, and the
`phn_to_words_sil` graph of w2vu.text.graphs (blank <s>, <SIL> absorbed). Emissions are synthesised
from the phones of the first sentences with <SIL> between words at random: 50 Hz frames, 2-6
frames per phone and 5-15 per <SIL>, log-softmax of Gaussian noise plus a peak on the true symbol,
a random other phone on `--confusion` of the phone segments. Each decoder runs in a fresh process
(its peak RSS is its own); x real time = audio seconds (frames / 50) / decoding seconds.

Run: python bench/selftrain_decode.py [--minutes 10] [--sentences 3000] [--order 3] [--beam 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit.lmplz import (  # noqa: E402 - needs the repository root on sys.path
    phone_lexicon,
    phone_sentences,
    source_sentences,
    word_sentences,
)

import machine  # noqa: E402 - a sibling module (bench/ is the script's folder)

LJSPEECH = REPO.parent / "shared" / "data" / "text" / "ljspeech_metadata_all.csv"
FRAME_RATE = 50.0  # wav2vec-U 1.0 generator output (stride 1 over 20 ms features)

WFST = """
import json, sys, time
from devkit.memory import peak_rss_kb
from w2vu.decode.wfst import DecodeOptions, check_compatible, decode_emissions, load_graph
from w2vu.io.features import open_features
from w2vu.io.lines import write_token_lines
before = peak_rss_kb()
start = time.perf_counter()
graph = load_graph(sys.argv[2])
features = open_features(sys.argv[1])
options = DecodeOptions(beam=float(sys.argv[4]), acoustic_scale=float(sys.argv[5]))
check_compatible(graph, features, sys.argv[1], options)
loaded = time.perf_counter()
hyps = decode_emissions(graph, features, options, threads=int(sys.argv[6]))
done = time.perf_counter()
write_token_lines(sys.argv[3], hyps)
print(json.dumps({"load_s": loaded - start, "seconds": done - loaded,
                  "rss_mb": peak_rss_kb() / 1024, "imports_mb": before / 1024}))
"""

VITERBI = """
import json, sys, time
import numpy as np, torch
from devkit.memory import peak_rss_kb
from w2vu.gan.generate import viterbi
from w2vu.io.dictionary import read_fairseq_dict
from w2vu.io.features import open_features
torch.set_num_threads(1)
before = peak_rss_kb()
symbols = read_fairseq_dict(sys.argv[2])
features = open_features(sys.argv[1])
start = time.perf_counter()
lines = []
for x in features:
    _, phones, _ = viterbi(torch.from_numpy(np.asarray(x)), symbols.index("<SIL>"))
    lines.append(" ".join(symbols[i] for i in phones))
seconds = time.perf_counter() - start
with open(sys.argv[3], "w", encoding="utf-8") as f:
    f.write("".join(line + "\\n" for line in lines))
print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_kb() / 1024,
                  "imports_mb": before / 1024}))
"""


def build_language(folder: Path, sentences: list[str], lexicon: dict[str, list[str]],
                   order: int) -> tuple[Path, dict]:
    """dict.phn.txt, lexicon, word ARPA and the phn_to_words_sil graph; sizes and build time."""
    from w2vu.text.graphs import build_graphs
    from w2vu.text.ngram import estimate_arpa
    from w2vu.text.phones import write_dictionary

    words = {w for s in sentences for w in s.split()}
    counts = Counter(p for w in words for p in lexicon[w])
    write_dictionary(folder / "dict.phn.txt", counts)
    (folder / "lexicon.lst").write_text("".join(f"{w}\t{' '.join(lexicon[w])}\n"
                                                for w in sorted(words)), encoding="utf-8")
    stats = estimate_arpa(sentences, order, folder / "words.arpa")
    start = time.perf_counter()
    graph = build_graphs(folder / "dict.phn.txt", folder / "words.arpa", folder / "graph",
                         lexicon=folder / "lexicon.lst", silence="<SIL>")
    seconds = time.perf_counter() - start
    return graph, {"vocabulary": len(words), "ngrams": sum(stats.counts),
                   "graph_s": seconds, "hlg_mb": (graph / "HLG.fst").stat().st_size / 2**20}


def synthesise(prefix: Path, phone_lines: list[str], symbols: list[str], minutes: float,
               confusion: float, peak: float, seed: int) -> tuple[int, int]:
    """Write emissions for phone lines until `minutes` of 50 Hz frames; (utterances, frames)."""
    from w2vu.io.features import FeatureWriter

    rng = np.random.default_rng(seed)
    index = {s: i for i, s in enumerate(symbols)}
    phones = [i for i, s in enumerate(symbols) if i >= 4 and s != "<SIL>"]
    target = int(minutes * 60 * FRAME_RATE)
    frames = utterances = 0
    with FeatureWriter(prefix, dim=len(symbols)) as writer:
        for line in phone_lines:
            if frames >= target:
                break
            ids = []
            for token in line.split():
                if token == "<SIL>":
                    ids += [index[token]] * int(rng.integers(5, 16))
                    continue
                label = index[token]
                if rng.random() < confusion:
                    label = int(rng.choice(phones))
                ids += [label] * int(rng.integers(2, 7))
            logits = rng.normal(0.0, 1.0, (len(ids), len(symbols)))
            logits[:, :4] -= 4.0  # the GAN is never trained to emit the specials
            logits[np.arange(len(ids)), ids] += peak
            logits -= logits.max(1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
            writer.append(logp.astype(np.float32))
            frames += len(ids)
            utterances += 1
    return utterances, frames


def run(code: str, *args: object) -> dict:
    """Run a snippet in a fresh interpreter (repository root as cwd); its JSON line."""
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                            text=True, check=False, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"decoder failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def error_rate(hyp_path: Path, refs: list[list[str]]) -> float:
    from w2vu.eval.metrics import phone_error_rate

    hyps = [line.split() for line in hyp_path.read_text(encoding="utf-8").splitlines()]
    return phone_error_rate(hyps, refs[:len(hyps)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="audio of emissions")
    parser.add_argument("--sentences", type=int, default=3000, help="LM training sentences")
    parser.add_argument("--order", type=int, default=3, help="word n-gram order")
    parser.add_argument("--beam", type=float, default=5.0)
    parser.add_argument("--acoustic-scale", type=float, default=0.5)
    parser.add_argument("--confusion", type=float, default=0.15,
                        help="share of phone segments whose peak is on a wrong phone")
    parser.add_argument("--peak", type=float, default=5.0, help="logit added on the peak symbol")
    parser.add_argument("--threads", type=int, default=1, help="WFST decoding processes")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from w2vu.io.dictionary import read_fairseq_dict

    print(machine.describe())
    words = word_sentences(source_sentences(LJSPEECH if LJSPEECH.exists() else None))
    words = words[:args.sentences]
    lexicon = phone_lexicon(words)
    lines = phone_sentences(words, lexicon, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="w2vu-bench-decode-") as tmp:
        folder = Path(tmp)
        graph, sizes = build_language(folder, words, lexicon, args.order)
        symbols = read_fairseq_dict(folder / "dict.phn.txt")
        prefix = folder / "valid.emissions"
        utterances, frames = synthesise(prefix, lines, symbols, args.minutes, args.confusion,
                                        args.peak, args.seed)
        audio_s = frames / FRAME_RATE
        wfst = min((run(WFST, prefix, graph, folder / "wfst.txt", args.beam,
                        args.acoustic_scale, args.threads) for _ in range(args.repeats)),
                   key=lambda r: r["seconds"])
        vit = min((run(VITERBI, prefix, folder / "dict.phn.txt", folder / "viterbi.txt")
                   for _ in range(args.repeats)), key=lambda r: r["seconds"])
        ref_words = [s.split() for s in words]
        ref_phones = [[p for w in s for p in lexicon[w]] for s in ref_words]
        wer = error_rate(folder / "wfst.txt", ref_words)
        per = error_rate(folder / "viterbi.txt", ref_phones)
    row = {"utterances": utterances, "frames": frames, "audio_s": audio_s, **sizes,
           "wfst": wfst, "viterbi": vit, "wfst_wer": wer, "viterbi_per": per}
    print(json.dumps(row))
    print_table(row, args)


def print_table(r: dict, args: argparse.Namespace) -> None:
    """Speed as x real time, the ratio, peak RSS and the error rates, side by side."""
    w, v = r["wfst"], r["viterbi"]
    print(f"\n{r['utterances']} utterances, {r['frames']:,} frames = {r['audio_s'] / 60:.1f} min "
          f"at {FRAME_RATE:g} Hz; word {args.order}-gram from {args.sentences} sentences "
          f"({r['vocabulary']:,} words, {r['ngrams']:,} n-grams); HLG {r['hlg_mb']:.1f} MB, "
          f"built in {r['graph_s']:.1f} s; beam {args.beam:g}, max_active 10000, acoustic "
          f"scale {args.acoustic_scale:g}, {args.threads} process(es); best of {args.repeats}")
    print(" | ".join(("decoder", "seconds", "x real time", "peak RSS MB", "(imports MB)",
                      "error rate")))
    print(" | ".join(("wfst (HLG)", f"{w['seconds']:.2f}", f"{r['audio_s'] / w['seconds']:.0f}",
                      f"{w['rss_mb']:.0f}", f"{w['imports_mb']:.0f}",
                      f"WER {100 * r['wfst_wer']:.1f}%")))
    print(" | ".join(("viterbi (argmax)", f"{v['seconds']:.2f}",
                      f"{r['audio_s'] / v['seconds']:.0f}", f"{v['rss_mb']:.0f}",
                      f"{v['imports_mb']:.0f}", f"PER {100 * r['viterbi_per']:.1f}%")))
    print(f"speed ratio wfst/viterbi: {v['seconds'] / w['seconds']:.3f} "
          f"(viterbi is {w['seconds'] / v['seconds']:.1f}x faster); "
          f"graph load {w['load_s']:.2f} s (not in the wfst seconds)")
    print(f"peak RSS ratio wfst/viterbi: {w['rss_mb'] / v['rss_mb']:.2f}")


if __name__ == "__main__":
    main()
