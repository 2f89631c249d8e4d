"""Gradient penalties on the discriminator, pure functions of (D, real, fake).

- ``wgan_gp``: Gulrajani et al., "Improved Training of Wasserstein GANs", 2017:
  ``lambda * E[(||grad_x D(x_hat)||_2 - 1)^2]``, ``x_hat = eps * x + (1 - eps) * x_fake``,
  ``eps ~ U[0, 1]`` per sample; lambda = 10.
- ``r1``: Mescheder et al., "Which Training Methods for GANs do actually Converge?", 2018:
  ``(gamma / 2) * E_real[||grad_x D(x)||_2^2]``; gamma = 10.
- ``r1r2``: R1 on real and R2 on generated samples with one gamma, as R3GAN (Huang et al.,
  NeurIPS 2024, eq. (5)-(6); brownvc/R3GAN ``Trainer.py``) adds them:
  ``(gamma / 2) * (E_real[||grad_x D(x)||_2^2] + E_fake[||grad_x D(G(z))||_2^2])``. The default
  gamma here is R1's usual 10; R3GAN tunes it per dataset (experiment=mnist5k_r3gan sets its own).
- ``dragan``: Kodali et al., "On Convergence and Stability of GANs", 2017 (arXiv 1705.07215), as
  the paper defines it: ``lambda * E_{x ~ P_real, delta ~ N(0, c I)}[(||grad_x D(x + delta)||_2
  - k)^2]`` with k = 1, lambda = 10 and c = 10 (the paper's "c ~ 10"; c is the variance of each
  coordinate's perturbation, symmetric around x, drawn independently for every sample and
  coordinate). The authors' README says to tune c to the data's range.
- ``dragan_code``: the authors' reference code instead (kodalinaveen3/DRAGAN, ``DRAGAN.ipynb``):
  ``x_p = x + 0.5 * std(x) * U[0, 1]`` (one std over the whole batch, one-sided noise per
  coordinate), then ``x_hat = x + alpha * (x_p - x)``, ``alpha ~ U[0, 1]`` per sample, and the
  same ``(||grad|| - 1)^2`` term; lambda = 10. Offered because it is what most DRAGAN numbers
  were produced with (Mimicry, tf.gans-comparison and others follow it); it is not the paper's.

Each needs ``create_graph=True`` (the penalty is differentiated again in D's update) and a
discriminator whose output for one sample does not depend on the others (no batch-mixing
normalization). They are computed in the discriminator update only.

Mixed precision (``16-mixed``): the input gradient is taken through D's fp16 activations, where
small gradients underflow to zero. ``scale`` (GradScaler's current scale, which the training step
reads from Lightning's precision plugin) makes each penalty follow torch's AMP gradient-penalty
recipe (torch.amp docs, "Gradient penalty"): the output is multiplied by the scale before
``autograd.grad`` and the gradient divided by it afterwards, in fp32. The outputs are averaged
before scaling (the gradient multiplied back by the count), so each sample's gradient seed is
``scale / n``, as in the scaled backward of a batch-mean loss that the scaler is tuned for:
``scale`` itself (65536 at first) would already overflow fp16's maximum, 65504.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from spectral_gan.errors import ConfigError

Discriminator = Callable[[Tensor], Tensor]
Scale = float | Tensor | None


def _input_grad(d: Discriminator, x: Tensor, scale: Scale = None) -> Tensor:
    """``grad_x sum D(x)``, differentiable (create_graph); scaled through fp16 when ``scale``."""
    x = x.detach().requires_grad_(True)
    out = d(x)
    if scale is None:
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        return grad
    out = out.float()
    n = out.numel()
    (grad,) = torch.autograd.grad(out.mean() * scale, x, create_graph=True)
    return grad.float() * (n / scale)


def _grad_norm(d: Discriminator, x: Tensor, scale: Scale = None) -> Tensor:
    """Per-sample ||grad_x D(x)||_2, differentiable (create_graph)."""
    return _input_grad(d, x, scale).flatten(1).norm(2, dim=1)


def _per_sample_uniform(x: Tensor) -> Tensor:
    return torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype)


def wgan_gp(d: Discriminator, real: Tensor, fake: Tensor, weight: float = 10.0,
            scale: Scale = None) -> Tensor:
    eps = _per_sample_uniform(real)
    x_hat = eps * real.detach() + (1 - eps) * fake.detach()
    return weight * (_grad_norm(d, x_hat, scale) - 1).pow(2).mean()


def r1(d: Discriminator, real: Tensor, fake: Tensor | None = None, weight: float = 10.0,
       scale: Scale = None) -> Tensor:
    return weight / 2 * _grad_norm(d, real, scale).pow(2).mean()


def r1r2(d: Discriminator, real: Tensor, fake: Tensor, weight: float = 10.0,
         scale: Scale = None) -> Tensor:
    squared = [_grad_norm(d, x, scale).pow(2).mean() for x in (real, fake)]
    return weight / 2 * (squared[0] + squared[1])


def dragan_perturbation(real: Tensor, variance: float = 10.0) -> Tensor:
    """The paper's delta ~ N(0, c I): independent, symmetric, per sample and coordinate."""
    return torch.randn_like(real) * variance ** 0.5


def dragan(d: Discriminator, real: Tensor, fake: Tensor | None = None, weight: float = 10.0,
           variance: float = 10.0, k: float = 1.0, scale: Scale = None) -> Tensor:
    """DRAGAN as Kodali et al. define it (arXiv 1705.07215): the penalty at ``x + delta``,
    ``delta ~ N(0, variance * I)`` (the paper's c), pulling ``||grad||`` to ``k``."""
    real = real.detach()
    points = real + dragan_perturbation(real, variance)
    return weight * (_grad_norm(d, points, scale) - k).pow(2).mean()


def dragan_code_points(real: Tensor, spread: float = 0.5) -> Tensor:
    """The reference code's points: ``x + alpha * spread * std(x) * U[0, 1]``, alpha per sample."""
    noise = spread * real.std() * torch.rand_like(real)
    return real + _per_sample_uniform(real) * noise


def dragan_code(d: Discriminator, real: Tensor, fake: Tensor | None = None, weight: float = 10.0,
                spread: float = 0.5, scale: Scale = None) -> Tensor:
    """DRAGAN as the authors' notebook computes it (kodalinaveen3/DRAGAN, DRAGAN.ipynb)."""
    real = real.detach()
    return weight * (_grad_norm(d, dragan_code_points(real, spread), scale) - 1).pow(2).mean()


class Penalty(NamedTuple):
    name: str
    fn: Callable[..., Tensor]
    default_weight: float


PENALTIES: dict[str, Penalty] = {
    "wgan_gp": Penalty("wgan_gp", wgan_gp, 10.0),
    "r1": Penalty("r1", r1, 10.0),
    "r1r2": Penalty("r1r2", r1r2, 10.0),
    "dragan": Penalty("dragan", dragan, 10.0),
    "dragan_code": Penalty("dragan_code", dragan_code, 10.0),
}


def get_penalty(name: str) -> Penalty | None:
    """The penalty called ``name``; None for ``none``."""
    if name in (None, "none"):
        return None
    if name not in PENALTIES:
        raise ConfigError(
            f"unknown penalty {name!r}; valid options are: none, {', '.join(PENALTIES)}")
    return PENALTIES[name]
