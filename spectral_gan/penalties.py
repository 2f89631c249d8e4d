"""Gradient penalties on the discriminator, pure functions of (D, real, fake).

- ``wgan_gp``: Gulrajani et al., "Improved Training of Wasserstein GANs", 2017:
  ``lambda * E[(||grad_x D(x_hat)||_2 - 1)^2]``, ``x_hat = eps * x + (1 - eps) * x_fake``,
  ``eps ~ U[0, 1]`` per sample; lambda = 10.
- ``r1``: Mescheder et al., "Which Training Methods for GANs do actually Converge?", 2018:
  ``(gamma / 2) * E_real[||grad_x D(x)||_2^2]``; gamma = 10.
- ``dragan``: Kodali et al., "On Convergence and Stability of GANs", 2017: the WGAN-GP term on
  real samples perturbed by ``0.5 * std(x) * U[0, 1]`` noise; lambda = 10.

Each needs ``create_graph=True`` (the penalty is differentiated again in D's update) and a
discriminator whose output for one sample does not depend on the others (no batch-mixing
normalization). They are computed in the discriminator update only.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from spectral_gan.errors import ConfigError

Discriminator = Callable[[Tensor], Tensor]


def _grad_norm(d: Discriminator, x: Tensor) -> Tensor:
    """Per-sample ||grad_x D(x)||_2, differentiable (create_graph)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    return grad.flatten(1).norm(2, dim=1)


def _per_sample_uniform(x: Tensor) -> Tensor:
    return torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype)


def wgan_gp(d: Discriminator, real: Tensor, fake: Tensor, weight: float = 10.0) -> Tensor:
    eps = _per_sample_uniform(real)
    x_hat = eps * real.detach() + (1 - eps) * fake.detach()
    return weight * (_grad_norm(d, x_hat) - 1).pow(2).mean()


def r1(d: Discriminator, real: Tensor, fake: Tensor | None = None, weight: float = 10.0) -> Tensor:
    return weight / 2 * _grad_norm(d, real).pow(2).mean()


def dragan(d: Discriminator, real: Tensor, fake: Tensor | None = None, weight: float = 10.0,
           spread: float = 0.5) -> Tensor:
    real = real.detach()
    noise = spread * real.std() * torch.rand_like(real)
    return weight * (_grad_norm(d, real + noise) - 1).pow(2).mean()


class Penalty(NamedTuple):
    name: str
    fn: Callable[..., Tensor]
    default_weight: float


PENALTIES: dict[str, Penalty] = {
    "wgan_gp": Penalty("wgan_gp", wgan_gp, 10.0),
    "r1": Penalty("r1", r1, 10.0),
    "dragan": Penalty("dragan", dragan, 10.0),
}


def get_penalty(name: str) -> Penalty | None:
    """The penalty called ``name``; None for ``none``."""
    if name in (None, "none"):
        return None
    if name not in PENALTIES:
        raise ConfigError(
            f"unknown penalty {name!r}; valid options are: none, {', '.join(PENALTIES)}")
    return PENALTIES[name]
