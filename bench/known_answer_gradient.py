"""Does the GAN's gradient point to the answer? One measurement near the known answer.

Why: from a random start the known-answer GAN does not learn (bench/RESULTS.md), and even a
generator started next to the answer is not pulled back to it. This asks the question behind
both, without training noise: put the generator at the answer with a share of its phone classes
mapped wrongly (``oracle_generator_weight(wrong=...)``), train the discriminator alone for a
number of updates (the generator frozen, as a well-trained critic would be), then average the
generator's gradient of each loss term over batches and ask, for every wrongly mapped class
vector, how the descent step changes its logits: is the true phone among the logits raised most
(rank 1 of V) or no better than chance (about V/2)? The same for the classes mapped rightly.

The generator, the losses, the batches and the optimiser are the trainer's (``w2vu.gan``);
``--hard`` gives the discriminator straight-through one-hot samples of the generator's argmax
instead of its softmax, so that it can judge only the phone sequence, not how sharp the
distributions are.

Run: python bench/known_answer_gradient.py [--work-dir DIR] [--wrong 0.3] [--margin 5]
       [--discriminator-dim 32] [--discriminator-depth 2] [--batch-size 32]
       [--gradient-penalty 1.5] [--hard]
       [--warm 0 1000 3000] [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from w2vu.gan.known_answer import (  # noqa: E402
    KnownAnswerPaths,
    KnownAnswerSettings,
    build_known_answer,
    draw_class_vectors,
    oracle_generator_weight,
)

TERMS = ("dense_g", "code_pen", "smoothness")


def straight_through(model: torch.nn.Module) -> None:
    """The discriminator sees one-hot argmax samples; gradients flow as through the softmax."""
    generate = model.generate

    def hard(*args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        out = generate(*args, **kwargs)
        soft = out["probs"]
        one_hot = torch.nn.functional.one_hot(soft.argmax(-1), soft.size(-1)).to(soft.dtype)
        out["probs"] = one_hot + soft - soft.detach()
        return out

    model.generate = hard


def ranks(delta: np.ndarray, ids: np.ndarray, phone: np.ndarray) -> float:
    """Mean rank (1 = raised most) of ``phone[i]`` among the logit changes of class ``i``."""
    if len(ids) == 0:
        return float("nan")
    return float(np.mean([(delta[i] > delta[i, phone[i]]).sum() + 1 for i in ids]))


def main(argv: list[str] | None = None) -> None:
    from known_answer import book_phone_text

    from w2vu.gan.data import open_training_data
    from w2vu.gan.losses import LossWeights, gan_losses
    from w2vu.gan.trainer import TrainConfig, build_model, build_optimizers, train_step
    from w2vu.train.runtime import resolve_device, seed_everything

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phone-text", type=Path, help="lm.phones.filtered.txt (default: the book)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--noise", type=float, default=0.3)
    p.add_argument("--wrong", type=float, default=0.3, help="share of classes mapped wrongly")
    p.add_argument("--margin", type=float, default=5.0, help="logit margin of the mapping")
    p.add_argument("--discriminator-dim", type=int, default=32)
    p.add_argument("--discriminator-depth", type=int, default=2,
                   help="conv layers of the critic (2: the reference's, one nonlinearity)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr-discriminator", type=float, default=1e-3)
    p.add_argument("--gradient-penalty", type=float, default=1.5)
    p.add_argument("--hard", action="store_true", help="straight-through one-hot to the critic")
    p.add_argument("--warm", type=int, nargs="+", default=[0, 1000, 3000],
                   help="measure after this many discriminator-only updates (cumulative)")
    p.add_argument("--batches", type=int, default=20, help="batches the gradient is summed over")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--work-dir", type=Path, help="keep (or reuse) the data here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="w2vu-ka-gradient-") as tmp:
        work = args.work_dir or Path(tmp)
        settings = KnownAnswerSettings(dim=args.dim, noise=args.noise, km_clusters=0)
        data = KnownAnswerPaths(work / "data")
        if not data.summary.exists():
            phone_text = args.phone_text or book_phone_text(work / "text", 10)
            build_known_answer(phone_text, data.root, settings)
        summary = json.loads(data.summary.read_text(encoding="utf-8"))
        settings = KnownAnswerSettings(**summary["settings"])
        config = TrainConfig(variant=1, batch_size=args.batch_size, lr_generator=1e-3,
                             lr_discriminator=args.lr_discriminator,
                             weights=LossWeights(gradient_penalty=args.gradient_penalty),
                             discriminator_dim=args.discriminator_dim,
                             discriminator_depth=args.discriminator_depth, seed=args.seed)
        model_rng = seed_everything(config.seed)
        batches, dictionary = open_training_data(data.features, data.text, data.dictionary,
                                                 config.batch_size, config.seed)
        symbols = list(dictionary.symbols)
        model = build_model(config, len(symbols), settings.dim)
        if args.hard:
            straight_through(model)
        conv = model.generator.proj[1]
        kernel = conv.kernel_size[0]
        now = oracle_generator_weight(data.root, symbols, kernel, args.margin, args.wrong,
                                      args.seed)
        answer = oracle_generator_weight(data.root, symbols, kernel, args.margin)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(now))
        device = resolve_device(args.device)
        model.to(device)
        classes = sorted(summary["classes"]) + ["<SIL>"]
        vectors = draw_class_vectors(np.random.default_rng([settings.seed, 0]), len(classes),
                                     settings)
        true = (vectors @ answer[:, :, kernel // 2].T).argmax(1)
        heard = (vectors @ now[:, :, kernel // 2].T).argmax(1)
        wrong, right = np.flatnonzero(true != heard), np.flatnonzero(true == heard)
        critic_input = "straight-through one-hot" if args.hard else "softmax"
        print(f"{summary['phones']} phones, {len(wrong)} of {len(classes)} classes mapped "
              f"wrongly, V = {len(symbols)} (chance rank {(len(symbols) + 1) / 2:.1f}); "
              f"discriminator {args.discriminator_dim} x {args.discriminator_depth}, batch "
              f"{args.batch_size}, gradient penalty {args.gradient_penalty}, {critic_input} "
              "to the critic", flush=True)
        optimizers = build_optimizers(model, config)
        done = 0
        for warm in args.warm:
            while done < warm:  # discriminator steps only (odd update numbers)
                train_step(model, optimizers, batches.batch(2 * done + 1).to(device),
                           2 * done + 1, config, model_rng)
                done += 1
            grads = {t: torch.zeros_like(conv.weight) for t in TERMS}
            adversarial = []
            for j in range(args.batches):  # generator-step losses on batches D never saw
                batch = batches.batch(10**6 + 2 * j).to(device)
                losses = gan_losses(model, batch.features, batch.padding_mask,
                                    batch.random_label, 2 * j, config.weights, None, model_rng)
                for term in TERMS:
                    model.zero_grad(set_to_none=True)
                    losses[term].backward(retain_graph=term != TERMS[-1])
                    grads[term] += conv.weight.grad
                adversarial.append(float(losses["dense_g"].detach()) / batch.size)
            model.zero_grad(set_to_none=True)
            batch = batches.batch(10**6 + 1).to(device)
            with torch.no_grad():
                d = gan_losses(model, batch.features, batch.padding_mask, batch.random_label, 1,
                               LossWeights(gradient_penalty=0.0), None, model_rng)
            d_loss = float(d["dense_d"] + d["token_d"]) / batch.size
            print(f"after {warm} discriminator updates: critic loss {d_loss:.3f} (chance "
                  f"1.386), generator adversarial loss {np.mean(adversarial):.3f}")
            print("  term        wrong classes: rank of true / of heard phone   right classes: "
                  "rank of true")
            for term in (*TERMS, "all"):
                grad = sum(grads.values()) if term == "all" else grads[term]
                delta = vectors @ (-grad[:, :, kernel // 2]).cpu().numpy().T
                print(f"  {term:10s}  {ranks(delta, wrong, true):13.1f} / "
                      f"{ranks(delta, wrong, heard):5.1f}"
                      f"{ranks(delta, right, true):36.1f}", flush=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"known-answer gradient: {len(args.warm)} measurements, peak RSS {peak:.0f} MiB, "
              f"wall {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
