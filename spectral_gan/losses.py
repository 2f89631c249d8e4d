"""Adversarial losses as pure functions of discriminator logits.

Each loss is a pair (discriminator loss of real and fake logits, generator loss of fake logits):
- hinge: Lim & Ye 2017; Miyato et al. 2018, eq. (16-17).
  L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))],  L_G = -E[D(G(z))]
- ns (non-saturating): Goodfellow et al. 2014.
  L_D = E[softplus(-D(x))] + E[softplus(D(G(z)))],  L_G = E[softplus(-D(G(z)))]
- wgan: Arjovsky et al. 2017 (pair it with a Lipschitz control such as SN or a gradient penalty).
  L_D = E[D(G(z))] - E[D(x)],  L_G = -E[D(G(z))]
- lsgan: Mao et al. 2017, with targets 1 (real) and 0 (fake), without the optional 1/2 factors.
  L_D = E[(D(x) - 1)^2] + E[D(G(z))^2],  L_G = E[(D(G(z)) - 1)^2]
- rpgan (relativistic pairing): Jolicoeur-Martineau 2019 (RSGAN); R3GAN, Huang et al. 2024,
  eq. (2) and brownvc/R3GAN ``Trainer.py``. Real and fake logits are paired by batch index:
  L_D = E[softplus(-(D(x_i) - D(G(z_i))))],  L_G = E[softplus(-(D(G(z_i)) - D(x_i)))]
  Its generator loss needs D's logits of real samples too (``relativistic``): the training step
  scores the last real batch of the step in the generator update, with D frozen.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch.nn.functional as F
from torch import Tensor

from spectral_gan.errors import ConfigError


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def ns_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def ns_g(fake: Tensor) -> Tensor:
    return F.softplus(-fake).mean()


def wgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def wgan_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return (real - 1.0).pow(2).mean() + fake.pow(2).mean()


def lsgan_g(fake: Tensor) -> Tensor:
    return (fake - 1.0).pow(2).mean()


def _paired(a: Tensor, b: Tensor) -> Tensor:
    if a.shape != b.shape:
        raise ConfigError(f"loss=rpgan pairs real and fake logits by batch index, but got "
                          f"{tuple(a.shape)} against {tuple(b.shape)}: use equal real and fake "
                          f"batches (g_batch_size=null)")
    return a - b


def rpgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.softplus(-_paired(real, fake)).mean()


def rpgan_g(fake: Tensor, real: Tensor) -> Tensor:
    return F.softplus(-_paired(fake, real)).mean()


class AdversarialLoss(NamedTuple):
    name: str
    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[..., Tensor]  # g(fake), or g(fake, real) when relativistic
    relativistic: bool = False  # the generator loss needs D(x) as well as D(G(z))


LOSSES: dict[str, AdversarialLoss] = {
    "hinge": AdversarialLoss("hinge", hinge_d, hinge_g),
    "ns": AdversarialLoss("ns", ns_d, ns_g),
    "wgan": AdversarialLoss("wgan", wgan_d, wgan_g),
    "lsgan": AdversarialLoss("lsgan", lsgan_d, lsgan_g),
    "rpgan": AdversarialLoss("rpgan", rpgan_d, rpgan_g, relativistic=True),
}


def get_loss(name: str) -> AdversarialLoss:
    """The (discriminator, generator) loss pair called ``name``."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; valid options are: {', '.join(LOSSES)}")
    return LOSSES[name]


__all__ = ["AdversarialLoss", "LOSSES", "get_loss"]
