"""Control for the known-answer GAN: does matching the text's phone transitions find the answer?

Why: the GAN does not learn the known answer, and its gradient does not point to it
(bench/RESULTS.md). This asks whether the *data* carry the answer in statistics a gradient can
follow, with no discriminator in between: the trainer's own generator (``w2vu.gan.models``) is
trained to make the expected phone-transition bigrams of its output match those of the unpaired
text (Empirical-ODM, Liu, Chen and Deng 2017: cross-entropy of the text's bigram distribution
against the output's, the expectation taken under per-frame posteriors). Pairs of equal phones
are left out on both sides, so that how many frames a phone lasts does not matter. Decoding and
PER are the GAN validation's (run-mean argmax, runs collapsed, ``<SIL>`` dropped).

Reference levels printed in the same run: the entropy of the text's bigrams (the loss floor),
the loss of the oracle generator (the answer, margin 20), the most-frequent-phone baseline.
``--start oracle --wrong 0.3`` starts next to the answer, as bench/known_answer.py does;
``--kernel`` sets the generator's context (the reference's 4 frames, or 1: a frame classifier).

Run: python bench/known_answer_bigram.py [--work-dir DIR] [--dim 64] [--noise 0.3]
       [--start random|oracle] [--wrong 0.3] [--kernel 1] [--steps 2000] [--lr 0.05]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from devkit.memory import peak_rss_kb  # noqa: E402
from w2vu.eval.metrics import phone_error_rate  # noqa: E402
from w2vu.gan.data import eval_batches, load_phone_text  # noqa: E402
from w2vu.gan.known_answer import (  # noqa: E402
    KnownAnswerPaths,
    KnownAnswerSettings,
    build_known_answer,
    oracle_generator_weight,
)
from w2vu.gan.models import Generator, GeneratorConfig  # noqa: E402
from w2vu.gan.validate import hypothesis_ids  # noqa: E402
from w2vu.io.dictionary import PhoneDictionary, load_phone_dictionary  # noqa: E402
from w2vu.io.features import Features, open_features  # noqa: E402
from w2vu.io.lines import read_token_lines  # noqa: E402
from w2vu.train.batches import pad_features  # noqa: E402

ORACLE_MARGIN = 20.0


def text_transitions(data: KnownAnswerPaths, dictionary: PhoneDictionary) -> torch.Tensor:
    """V×V distribution of the unpaired text's phone bigrams, equal pairs left out."""
    text = load_phone_text(data.text, dictionary)
    v = len(dictionary.symbols)
    counts = np.zeros((v, v))
    for i in range(len(text)):
        ids = text[i]
        np.add.at(counts, (ids[:-1], ids[1:]), 1)
    np.fill_diagonal(counts, 0)
    return torch.tensor(counts / counts.sum(), dtype=torch.float32)


def expected_transitions(logits: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """V×V expected counts of consecutive output pairs under per-frame posteriors, equal pairs
    left out."""
    probs = logits.float().softmax(-1) * (~padding_mask).unsqueeze(-1)
    pairs = torch.einsum("btv,btw->vw", probs[:, :-1], probs[:, 1:])
    return pairs * (1 - torch.eye(pairs.size(0)))


def bigram_loss(pairs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the text's transitions ``target`` against the output's ``pairs``."""
    return -(target * torch.log(pairs / pairs.sum() + 1e-8)).sum()


class Scorer:
    """PER and mean output length of the generator on the spoken half, as validation decodes."""

    def __init__(self, features: Features, data: KnownAnswerPaths,
                 dictionary: PhoneDictionary) -> None:
        self.features = features
        self.dictionary = dictionary
        self.refs = read_token_lines(data.phn, "references", "rebuild the known-answer set")

    @torch.inference_mode()
    def __call__(self, generator: Generator) -> tuple[float, float]:
        generator.eval()
        hyps: list[list[str]] = []
        for batch in eval_batches(self.features):
            out = generator(batch.features, batch.padding_mask)
            ids = hypothesis_ids(out["logits"], out["padding_mask"], len(self.dictionary),
                                 self.dictionary.sil_index)
            hyps.extend([self.dictionary.symbols[j] for j in h] for h in ids)
        generator.train()
        return phone_error_rate(hyps, self.refs), sum(map(len, hyps)) / len(hyps)


@torch.inference_mode()
def mean_loss(generator: Generator, features: Features, target: torch.Tensor) -> float:
    """The loss over every utterance at once (the figure steps are compared with)."""
    generator.eval()
    pairs = torch.zeros_like(target)
    for batch in eval_batches(features):
        out = generator(batch.features, batch.padding_mask)
        pairs += expected_transitions(out["logits"], out["padding_mask"])
    generator.train()
    return float(bigram_loss(pairs, target))


def make_generator(args: argparse.Namespace, data: KnownAnswerPaths,
                   dictionary: PhoneDictionary, margin: float, wrong: float) -> Generator:
    """The trainer's generator (no dropout); at the answer when ``margin`` > 0."""
    config = GeneratorConfig(input_dim=args.dim, kernel=args.kernel, dropout=0.0)
    generator = Generator(config, len(dictionary.symbols))
    if margin > 0:
        weight = oracle_generator_weight(data.root, list(dictionary.symbols), args.kernel,
                                         margin, wrong, args.seed)
        with torch.no_grad():
            generator.proj[1].weight.copy_(torch.from_numpy(weight))
    return generator


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = KnownAnswerSettings()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phone-text", type=Path, help="lm.phones.filtered.txt (default: the book)")
    p.add_argument("--min-phones", type=int, default=10)
    p.add_argument("--frames-per-phone", type=float, default=defaults.frames_per_phone)
    p.add_argument("--noise", type=float, default=defaults.noise)
    p.add_argument("--dim", type=int, default=defaults.dim)
    p.add_argument("--data-seed", type=int, default=defaults.seed)
    p.add_argument("--start", choices=("random", "oracle"), default="random")
    p.add_argument("--margin", type=float, default=5.0, help="--start oracle: logit margin")
    p.add_argument("--wrong", type=float, default=0.0,
                   help="--start oracle: share of classes mapped wrongly (in a cycle)")
    p.add_argument("--kernel", type=int, default=GeneratorConfig.kernel,
                   help="generator context in frames (default: the reference's)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05, help="Adam")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--every", type=int, default=100, help="score every this many steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the curve here")
    p.add_argument("--work-dir", type=Path, help="keep the data here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from known_answer import book_phone_text

    from w2vu.eval.score import most_frequent_phone_baseline

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="w2vu-bigram-") as tmp:
        work = args.work_dir or Path(tmp)
        data = KnownAnswerPaths(work / "data")
        if not data.summary.exists():
            text = args.phone_text or book_phone_text(work / "text", args.min_phones)
            build_known_answer(text, data.root, KnownAnswerSettings(
                frames_per_phone=args.frames_per_phone, noise=args.noise, dim=args.dim,
                km_clusters=0, seed=args.data_seed))
        dictionary = load_phone_dictionary(data.dictionary)
        features = open_features(data.features)
        target = text_transitions(data, dictionary)
        score = Scorer(features, data, dictionary)
        floor = float(-(target[target > 0] * target[target > 0].log()).sum())
        oracle = mean_loss(make_generator(args, data, dictionary, ORACLE_MARGIN, 0.0),
                           features, target)
        baseline = most_frequent_phone_baseline(data.text, data.phn, work / "baseline.txt").rate
        print(f"bigram floor (text entropy) {floor:.4f}; oracle loss {oracle:.4f}; "
              f"most-frequent-phone PER {baseline:.3f}", flush=True)
        margin = args.margin if args.start == "oracle" else 0.0
        generator = make_generator(args, data, dictionary, margin, args.wrong)
        optimizer = torch.optim.Adam(generator.parameters(), lr=args.lr)
        rng = np.random.default_rng(args.seed)
        began = time.monotonic()
        per, length = score(generator)
        curve = [{"step": 0, "loss": mean_loss(generator, features, target), "per": per,
                  "out_len": length}]
        print(f"step {0:6d}  loss {curve[0]['loss']:.4f}  PER {per:.3f}  len {length:.1f}",
              flush=True)
        for step in range(1, args.steps + 1):
            indices = rng.choice(len(features), min(args.batch_size, len(features)),
                                 replace=False)
            feats, mask = pad_features(features, np.sort(indices))
            out = generator(feats, mask)
            loss = bigram_loss(expected_transitions(out["logits"], out["padding_mask"]), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % args.every == 0 or step == args.steps:
                per, length = score(generator)
                curve.append({"step": step, "loss": mean_loss(generator, features, target),
                              "per": per, "out_len": length})
                print(f"step {step:6d}  loss {curve[-1]['loss']:.4f}  PER {per:.3f}  "
                      f"len {length:.1f}  {time.monotonic() - began:.0f} s", flush=True)
        refs = sum(map(len, score.refs)) / len(score.refs)
        last = curve[-1]
        print(f"bigram control: PER {curve[0]['per']:.3f} -> {last['per']:.3f} in "
              f"{args.steps} steps (ratio to baseline {last['per'] / baseline:.2f}); loss "
              f"{last['loss']:.4f} against oracle {oracle:.4f}; output {last['out_len']:.1f}"
              f" phones per sentence, references {refs:.1f}; {time.monotonic() - began:.0f} s; "
              f"peak RSS {peak_rss_kb() / 1024:.0f} MiB", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                             "floor": floor, "oracle": oracle,
                                             "baseline": baseline, "curve": curve}, indent=1)
                                 + "\n")


if __name__ == "__main__":
    main()
