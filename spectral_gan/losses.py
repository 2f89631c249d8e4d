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


class AdversarialLoss(NamedTuple):
    name: str
    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor], Tensor]


LOSSES: dict[str, AdversarialLoss] = {
    "hinge": AdversarialLoss("hinge", hinge_d, hinge_g),
    "ns": AdversarialLoss("ns", ns_d, ns_g),
    "wgan": AdversarialLoss("wgan", wgan_d, wgan_g),
    "lsgan": AdversarialLoss("lsgan", lsgan_d, lsgan_g),
}


def get_loss(name: str) -> AdversarialLoss:
    """The (discriminator, generator) loss pair called ``name``."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; valid options are: {', '.join(LOSSES)}")
    return LOSSES[name]


__all__ = ["AdversarialLoss", "LOSSES", "get_loss"]
