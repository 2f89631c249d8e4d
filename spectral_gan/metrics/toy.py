"""Mode metrics for 2-D Gaussian mixtures (ring, grid), as in the unrolled-GAN, VEEGAN and PacGAN
evaluations (PacGAN, Lin et al. 2018, Section 5 and Table 1).

A generated sample is *high quality* when its distance to the nearest mode is under 3 standard
deviations of the mixture components; a mode is *covered* when at least one high-quality sample
has it as nearest mode; ``reverse_kl`` is KL(p || uniform) of the histogram p of high-quality
samples over modes (0 when every mode gets the same share; log K when one mode gets all).
PacGAN's protocol uses 2,500 generated samples.
"""
from __future__ import annotations

import math

import torch


@torch.no_grad()
def mode_metrics(samples: torch.Tensor, modes: torch.Tensor, std: float,
                 threshold: float = 3.0) -> dict[str, float]:
    samples = samples.detach().float().cpu()
    modes = modes.float().cpu()
    dist, nearest = torch.cdist(samples, modes).min(dim=1)
    good = dist < threshold * std
    counts = torch.bincount(nearest[good], minlength=len(modes)).float()
    n_good = int(good.sum())
    if n_good:
        p = counts / n_good
        nz = p > 0
        reverse_kl = float((p[nz] * (p[nz] * len(modes)).log()).sum())
    else:
        reverse_kl = math.log(len(modes))  # nothing near any mode: as bad as full collapse
    return {
        "modes": float((counts > 0).sum()),
        "high_quality": n_good / max(len(samples), 1),
        "reverse_kl": reverse_kl,
    }
