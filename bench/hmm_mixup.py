"""HMM mixing up: w2vu's seeded split (`w2vu.selftrain.hmm.mixup.mix_up`) against
kaldi-hmm-gmm's own `AmDiagGmm.split_by_count`, timed in the same process on the same model.

Why: mix_up works the targets out on a split copy and redraws the perturbation in numpy (so that
a seed fixes the model), which costs more than Kaldi's one call; this measures how much, for one
mixing-up step of the digits config's size (24 pdfs, 234-d, 960 -> 992 Gaussians). Peak RSS of
the process is printed at the end.

Run: python bench/hmm_mixup.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from w2vu.kaldi_stack import kaldi_hmm_gmm as khg
from w2vu.selftrain.hmm.mixup import mix_up

PDFS, GAUSS, DIM, STEP = 24, 40, 234, 32


def model(rng: np.random.Generator) -> khg.AmDiagGmm:
    am = khg.AmDiagGmm()
    for _ in range(PDFS):
        gmm = khg.DiagGmm(nmix=GAUSS, dim=DIM)
        gmm.set_weights(np.full(GAUSS, 1 / GAUSS, np.float32))
        gmm.set_invvars_and_means(rng.uniform(0.5, 2, (GAUSS, DIM)).astype(np.float32),
                                  rng.normal(0, 1, (GAUSS, DIM)).astype(np.float32))
        gmm.compute_gconsts()
        am.add_pdf(gmm)
    return am


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    base = model(rng)
    occupancy = rng.uniform(1000, 4000, PDFS).astype(np.float32)
    target = base.num_gauss + STEP
    arms = {
        "kaldi split_by_count": lambda am: am.split_by_count(
            state_occs=occupancy, target_components=target, perturb_factor=0.01, power=0.25,
            min_count=20.0),
        "w2vu mix_up": lambda am: mix_up(am, occupancy, target, 0.01, 0.25, 20.0,
                                         np.random.default_rng(1)),
    }
    seconds = dict.fromkeys(arms, 0.0)
    for _ in range(args.repeats):  # interleaved, so load swings hit both arms
        for name, split in arms.items():
            am = khg.AmDiagGmm()
            am.copy_from_am_diag_gmm(base)
            start = time.perf_counter()
            split(am)
            seconds[name] += time.perf_counter() - start
    kaldi, ours = (seconds[name] / args.repeats for name in arms)
    print(f"one mixing-up step ({PDFS} pdfs, {DIM}-d, {base.num_gauss} -> {target} Gaussians): "
          f"kaldi {kaldi * 1e3:.2f} ms, w2vu {ours * 1e3:.2f} ms, w2vu/kaldi {ours / kaldi:.2f}x")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
