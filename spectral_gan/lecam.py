"""LeCam regularization of the discriminator (Tseng, Jiang, Liu, Yang & Yang, "Regularizing
Generative Adversarial Networks under Limited Data", CVPR 2021, eq. (3); google/lecam-gan and
StudioGAN's ``lecam_reg``, read for the form and constants).

    R_LC = E[relu(D(x) - alpha_F)^2] + E[relu(alpha_R - D(G(z)))^2]

``alpha_R`` and ``alpha_F`` are exponential moving averages of D's mean logit on real and on
generated batches (decay 0.99; before ``start`` generator steps the average is just the last
batch's mean, decay 0, as both codes do). The paper writes the two terms without the ``relu``
(``||D(x) - alpha_F||^2 + ||D(G(z)) - alpha_R||^2``); both reference codes clip them, so only real
logits above the fake anchor and fake logits below the real anchor are pulled. ``one_sided=False``
gives the paper's two-sided form. The anchors are updated with the current batch first, then the
term is computed (the codes' order). Weight: StudioGAN's configs use 0.3 (BigGAN on CIFAR-10).

The anchors live on the device (no host sync per update) in a module, so checkpoints keep them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def lecam_penalty(d_real: Tensor, d_fake: Tensor, anchor_real: Tensor, anchor_fake: Tensor,
                  one_sided: bool = True) -> Tensor:
    """R_LC of one batch of real and fake logits against the anchors (alpha_R, alpha_F)."""
    above, below = d_real - anchor_fake, anchor_real - d_fake
    if one_sided:
        above, below = F.relu(above), F.relu(below)
    return above.pow(2).mean() + below.pow(2).mean()


class LeCamAnchors(nn.Module):
    """alpha_R and alpha_F: EMAs of D's mean real and fake logits, as buffers (checkpointed)."""

    def __init__(self, decay: float = 0.99, start: int = 1000) -> None:
        super().__init__()
        self.decay, self.start = float(decay), int(start)
        self.register_buffer("real", torch.zeros(()))
        self.register_buffer("fake", torch.zeros(()))

    @torch.no_grad()
    def update(self, d_real: Tensor, d_fake: Tensor, step: int) -> None:
        decay = self.decay if step >= self.start else 0.0
        for anchor, logits in ((self.real, d_real), (self.fake, d_fake)):
            anchor.lerp_(logits.detach().float().mean(), 1.0 - decay)


__all__ = ["LeCamAnchors", "lecam_penalty"]
