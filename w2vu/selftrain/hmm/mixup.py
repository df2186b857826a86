"""Mixing up (gmm-est's --mix-up): Kaldi's split targets and split order, with a seeded
perturbation of the new means.

Why: kaldi-hmm-gmm's `DiagGmm::Split` draws the mean perturbation from a Mersenne Twister seeded
by `std::random_device` (its `RandnVector`), so two trainings on the same inputs and seed part at
the first split and end with different models (digits config: HMM test PER 0.749 vs 0.753).
Here Kaldi still decides how many Gaussians each pdf gets (`SplitByCount`: occupancy to the
power, minimum count) and which component each split copies (largest weight first, the
weight halved); only the random step, `±perturb_factor · N(0, 1) · std` on the mean, comes from
the caller's numpy generator.
"""

from __future__ import annotations

import numpy as np

from w2vu.kaldi_stack import kaldi_hmm_gmm as khg


def split_targets(am: khg.AmDiagGmm, occupancy: np.ndarray, target: int, power: float,
                  min_count: float) -> list[int]:
    """Gaussians per pdf after mixing up to `target` in all, as Kaldi's `SplitByCount` sets them
    (worked out on a copy split without perturbation)."""
    probe = khg.AmDiagGmm()
    probe.copy_from_am_diag_gmm(am)
    probe.split_by_count(state_occs=occupancy, target_components=target, perturb_factor=0.0,
                         power=power, min_count=min_count)
    return [probe.num_gauss_in_pdf(pdf) for pdf in range(probe.num_pdfs)]


def mix_up(am: khg.AmDiagGmm, occupancy: np.ndarray, target: int, perturb_factor: float,
           power: float, min_count: float, rng: np.random.Generator) -> None:
    """Split the Gaussians of `am` in place up to about `target` in all (fewer where a pdf's
    occupancy is below `min_count` per Gaussian); same generator state, same model."""
    for pdf, wanted in enumerate(split_targets(am, occupancy, target, power, min_count)):
        gmm = am.get_pdf(pdf)  # a reference into `am`
        had = gmm.num_gauss
        if wanted <= had:
            continue
        history = gmm.split(wanted, 0.0)  # the copied component of each new one, in order
        inv_vars = np.array(gmm.inv_vars, dtype=np.float32)
        means_invvars = np.array(gmm.means_invvars, dtype=np.float32)
        for new, source in enumerate(history, start=had):
            step = (rng.standard_normal(gmm.dim).astype(np.float32)
                    * np.sqrt(inv_vars[source]) * np.float32(perturb_factor))
            base = means_invvars[source].copy()
            means_invvars[new] = base + step
            means_invvars[source] = base - step
        gmm.set_invvars_and_means(inv_vars, means_invvars / inv_vars)
        gmm.compute_gconsts()
