"""Collapse detection: plain checks on numbers the training loop already has.

A GAN can end in a state that no loss curve flags as an error: the discriminator separates real
from fake by its whole margin (hinge loss 0), its gradients vanish, and the generator sits on one
output (an all-black image, one shape for every z). ``assess`` turns the signals of such a state
into plain-language reasons; the LightningModule logs them as ``health/...`` scalars and warns.

Thresholds (chosen to flag only clear collapse, never ordinary early training):
- sample diversity below ``DIVERSITY_FLOOR`` (0.1) of the data's: the mean per-feature standard
  deviation over a batch of samples, as a fraction of the same figure for a real batch. A constant
  image gives 0; a generator producing one shape with small variations about 0.1-0.15; trained
  digit generators 0.8-1.1.
- the discriminator's gradient norm below ``STALL_GRAD_NORM`` (1e-3) on ``STALL_LOGS`` (3)
  consecutive log steps: D learns nothing (with the hinge loss: every real logit above 1, every
  fake one below -1), so nothing moves the generator away from where it sits.
- an Inception or classifier score below ``IS_FLOOR`` (1.5): the samples look like one class
  (IS is 1 for a single class, 10 for ten balanced classes).
"""
from __future__ import annotations

from typing import Mapping

import torch

DIVERSITY_FLOOR = 0.1
STALL_GRAD_NORM = 1e-3
STALL_LOGS = 3
IS_FLOOR = 1.5
IS_METRICS = ("metrics/is", "metrics/is_classifier")


def diversity(samples: torch.Tensor) -> float:
    """Mean over features (pixels, coordinates) of the standard deviation across the batch."""
    flat = samples.detach().float().flatten(1)
    return float(flat.std(dim=0).mean()) if len(flat) > 1 else 0.0


def assess(diversity_ratio: float | None = None, stalled_logs: int = 0,
           scores: Mapping[str, float] | None = None) -> list[str]:
    """Reasons to call the samples collapsed (empty: healthy).

    Args:
        diversity_ratio: sample diversity as a fraction of the data's (``diversity`` of each).
        stalled_logs: consecutive log steps on which D's gradient norm was below STALL_GRAD_NORM.
        scores: evaluation metrics; the ``IS_METRICS`` among them are checked against IS_FLOOR.
    """
    reasons = []
    if diversity_ratio is not None and diversity_ratio < DIVERSITY_FLOOR:
        reasons.append(f"sample diversity is {diversity_ratio:.3f} of the data's (below "
                       f"{DIVERSITY_FLOOR}): the generator gives nearly the same output for every z")
    if stalled_logs >= STALL_LOGS:
        reasons.append(f"the discriminator's gradient norm has been below {STALL_GRAD_NORM} for "
                       f"{stalled_logs} log steps in a row: it separates real from fake completely "
                       f"and no longer learns")
    for name, value in (scores or {}).items():
        if name in IS_METRICS and value < IS_FLOOR:
            reasons.append(f"{name.removeprefix('metrics/')} is {value:.2f} (below {IS_FLOOR}): "
                           f"the samples look like a single class")
    return reasons
