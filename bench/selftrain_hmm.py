"""HMM self-training: time per training pass and decoding speed, against per-frame baselines.

Why: kaldi-hmm-gmm's examples accumulate GMM statistics with one Python call per frame
(`AccumAmDiagGmm.accumulate_for_gmm`) and decode with `DecodableAmDiagGmmScaled`, which
evaluates the GMMs again for every LM weight. w2vu.selftrain.hmm accumulates per pdf in numpy
and evaluates the GMMs once per utterance for the whole LM-weight grid. Both are timed here on
the same synthetic data (Gaussian frames per phone, silence at the ends), in the same process:
* training: one accumulation + update pass over fixed alignments, ours vs per frame;
* decoding: all LM weights of the grid, ours vs one GMM decodable per weight;
* word decoding (`hmm-word-decode`: HCLG from a word 3-gram and the lexicon) against phone
  decoding (the phone 4-gram), the same model and weights, with WER and PER.
The synthetic utterances are sentences of words from a random lexicon, so both LMs exist.
Peak RSS of the process is printed at the end.

Run: python bench/selftrain_hmm.py [--utterances 400] [--dim 78] [--weights 7 9 11 13 15 17]
     [--word-weights 7 11 15]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit.memory import peak_rss_kb  # noqa: E402 - needs the repository root on sys.path
from w2vu.eval.metrics import phone_error_rate  # noqa: E402
from w2vu.eval.score import read_lines  # noqa: E402
from w2vu.io.features import open_features, write_features  # noqa: E402
from w2vu.kaldi_stack import kaldi_hmm_gmm as khg  # noqa: E402
from w2vu.selftrain.hmm import align as hmm_align  # noqa: E402
from w2vu.selftrain.hmm import decode as hmm_decode  # noqa: E402
from w2vu.selftrain.hmm import model as hmm_model  # noqa: E402
from w2vu.selftrain.hmm import train as hmm_train  # noqa: E402
from w2vu.text.ngram import estimate_arpa  # noqa: E402

import machine  # noqa: E402 - a sibling module (bench/ is the script's folder)

PHONES = [f"p{i}" for i in range(30)]
WORDS = 200


def make_data(folder: Path, utterances: int, dim: int, seed: int
              ) -> tuple[list[list[str]], list[list[str]], dict[str, str]]:
    """Features, phone labels, dictionary, phone and word LMs of a synthetic corpus of word
    sentences; returns the phone lines, the word lines and the lexicon."""
    rng = np.random.default_rng(seed)
    means = {p: rng.normal(0, 3, dim) for p in [*PHONES, "<SIL>"]}
    lexicon = {f"w{i}": " ".join(rng.choice(PHONES, size=rng.integers(2, 7)))
               for i in range(WORDS)}
    utts, labels, sentences = [], [], []
    for _ in range(utterances):
        words = [f"w{i}" for i in rng.integers(0, WORDS, size=rng.integers(3, 8))]
        seq = " ".join(lexicon[w] for w in words).split()
        segs = [("<SIL>", 20)] + [(p, int(rng.integers(3, 10))) for p in seq] + [("<SIL>", 20)]
        utts.append(np.concatenate([means[p] + rng.normal(0, 1, (n, dim)) for p, n in segs]
                                   ).astype(np.float32))
        labels.append(seq)
        sentences.append(words)
    write_features(folder / "feats", utts)
    (folder / "labels.txt").write_text("".join(" ".join(x) + "\n" for x in labels), "utf-8")
    (folder / "dict.phn.txt").write_text("".join(f"{p} 1\n" for p in PHONES) + "<SIL> 0\n",
                                         "utf-8")
    estimate_arpa(["<SIL> " + " ".join(x) + " <SIL>" for x in labels], 4, folder / "lm.arpa")
    estimate_arpa([" ".join(x) for x in sentences], 3, folder / "words.arpa")
    return labels, sentences, lexicon


def per_frame_pass(model: hmm_model.HmmModel, feats: list[np.ndarray], alis: list[np.ndarray]
                   ) -> float:
    """The examples' gmm-acc-stats-ali + gmm-est: a Python call per frame; returns seconds."""
    start = time.perf_counter()
    accs = khg.AccumAmDiagGmm()
    accs.init(model=model.am, flags=khg.GmmUpdateFlags.kGmmAll)
    trans = model.trans_model.init_stats()
    for x, ali in zip(feats, alis):
        for t, tid in enumerate(ali.tolist()):
            model.trans_model.accumulate(prob=1.0, trans_id=tid, stats=trans)
            accs.accumulate_for_gmm(model=model.am, data=x[t],
                                    gmm_index=model.trans_model.transition_id_to_pdf(tid),
                                    weight=1.0)
    khg.mle_am_diag_gmm_update(config=khg.MleDiagGmmOptions(), amdiag_gmm_acc=accs,
                               flags=khg.str_to_gmm_flags("mvw"), am_gmm=model.am)
    return time.perf_counter() - start


def our_pass(model: hmm_model.HmmModel, feats: list[np.ndarray], alis: list[np.ndarray]) -> float:
    """w2vu's accumulation (numpy per pdf) + the same update; returns seconds."""
    start = time.perf_counter()
    tid2pdf = np.asarray(model.trans_model.transition_id_to_pdf_array(), dtype=np.int64)
    stats = hmm_train._Stats(model.am, model.trans_model, feats[0].shape[1])
    stats.add(model.am, np.concatenate(feats), tid2pdf[np.concatenate(alis)],
              np.concatenate(alis))
    khg.mle_am_diag_gmm_update(config=khg.MleDiagGmmOptions(),
                               amdiag_gmm_acc=stats.kaldi_accs(model.am),
                               flags=khg.str_to_gmm_flags("mvw"), am_gmm=model.am)
    return time.perf_counter() - start


def baseline_decode(model: hmm_model.HmmModel, folder: Path, weights: list[float]) -> float:
    """One DecodableAmDiagGmmScaled per utterance and weight (GMMs evaluated per weight)."""
    from w2vu.selftrain.hmm.graph import build_hclg, decoding_lang

    lang = decoding_lang(model.phones, folder / "lm.arpa")
    graph = build_hclg(lang, folder / "lm.arpa", model.trans_model, model.tree)
    decoder = khg.LatticeFasterDecoder(graph, khg.LatticeFasterDecoderConfig(
        beam=13.0, max_active=7000, lattice_beam=6.0))
    features = open_features(folder / "feats")
    start = time.perf_counter()
    for i in range(len(features)):
        x = model.features(features[i])
        for w in weights:
            khg.decode_utterance_lattice_faster(
                decoder=decoder, decodable=khg.DecodableAmDiagGmmScaled(
                    am=model.am, tm=model.trans_model, feats=x, scale=1.0 / w),
                trans_model=model.trans_model, utt=str(i), allow_partial=True)
    return time.perf_counter() - start


def word_decode(model: hmm_model.HmmModel, folder: Path, weights: list[float],
                labels: list[list[str]], sentences: list[list[str]], lexicon: dict[str, str],
                seconds: float) -> None:
    """Word decoding against phone decoding of the same model, utterances and LM weights
    (graph builds included in both); error rates at the best weight of each."""
    timed = {}
    for name, lm, lex, refs in (("phones", "lm.arpa", None, labels),
                                ("words", "words.arpa", lexicon, sentences)):
        start = time.perf_counter()
        paths = hmm_decode.decode_hmm(model, folder / "feats", folder / lm, weights,
                                      folder / f"dec_{name}", lexicon=lex)
        timed[name] = time.perf_counter() - start
        best = min(phone_error_rate(read_lines(path), refs) for path in paths.values())
        print(f"{name}: {timed[name]:.2f} s for {len(weights)} LM weights "
              f"({seconds * len(weights) / timed[name]:.0f}x real time), best error {best:.3f}")
    print(f"word decoding / phone decoding time: x{timed['words'] / timed['phones']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=400)
    parser.add_argument("--dim", type=int, default=78, help="input dim (deltas are off)")
    parser.add_argument("--weights", type=float, nargs="+", default=[7, 9, 11, 13, 15, 17])
    parser.add_argument("--word-weights", type=float, nargs="+", default=[7, 11, 15],
                        help="LM weights of the word-against-phone decoding part")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine.describe())
    with tempfile.TemporaryDirectory(prefix="w2vu-bench-hmm-") as tmp:
        folder = Path(tmp)
        labels, sentences, lexicon = make_data(folder, args.utterances, args.dim, args.seed)
        config = hmm_model.HmmConfig(delta_order=0, gaussians=300)
        report = hmm_train.train_hmm(folder / "feats", folder / "labels.txt",
                                     folder / "dict.phn.txt", folder / "model.pkl", config,
                                     seed=args.seed)
        frames = report.frames
        print(f"{args.utterances} utterances, {frames} frames, {args.dim}-d, "
              f"{report.num_gaussians} Gaussians; full training {sum(report.seconds_per_iter):.1f}"
              f" s over {config.iters} passes (median {np.median(report.seconds_per_iter):.3f}"
              " s per pass, realignment included)")
        model = hmm_model.load_hmm(folder / "model.pkl")
        features = open_features(folder / "feats")
        feats = [model.features(features[i]) for i in range(len(features))]
        aligned = hmm_align.align_hmm(model, folder / "feats", labels)
        phone_id = {p: i for i, p in enumerate(model.lang.phone_table)}
        # Transition ids of the alignment are not returned; realign through the private helper.
        graphs = hmm_align.training_graphs(model.lang, model.trans_model, model.tree, labels, 0.5)
        alis = [hmm_align.align_utterance(model.am, model.trans_model, g, x, 60.0, 120.0, config,
                                          "u") for g, x in zip(graphs, feats)]
        assert all(a is not None for a in alis) and phone_id and aligned
        ours = min(our_pass(model, feats, alis) for _ in range(2))
        base = per_frame_pass(model, feats, alis)
        print(f"training pass (accumulate + update, fixed alignments): ours {ours:.3f} s, "
              f"per-frame baseline {base:.3f} s, speed-up x{base / ours:.1f}")
        start = time.perf_counter()
        hmm_decode.decode_hmm(model, folder / "feats", folder / "lm.arpa", args.weights,
                              folder / "dec")
        ours_dec = time.perf_counter() - start
        base_dec = baseline_decode(model, folder, args.weights)
        seconds = frames / 50.0
        print(f"decoding {len(args.weights)} LM weights (graph build included in ours): ours "
              f"{ours_dec:.2f} s ({seconds * len(args.weights) / ours_dec:.0f}x real time), "
              f"baseline {base_dec:.2f} s, speed-up x{base_dec / ours_dec:.2f}")
        word_decode(model, folder, args.word_weights, labels, sentences, lexicon, seconds)
    print(f"peak RSS {peak_rss_kb() / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
