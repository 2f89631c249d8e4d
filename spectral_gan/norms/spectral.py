"""Spectral normalization, W_SN = W / sigma(W).

Miyato, Kataoka, Koyama, Yoshida, "Spectral Normalization for Generative Adversarial Networks",
ICLR 2018 (Algorithm 1). sigma is estimated by power iteration with persistent vectors.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.errors import ConfigError
from spectral_gan.norms.power_iteration import PowerIteration, weight_matrix
from spectral_gan.norms.registry import register_weight_norm

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def output_dim(module: nn.Module) -> int:
    """The weight dimension that indexes output features: 1 for ConvTranspose, else 0.

    For an Embedding (num_classes, dim) dim 0 indexes the classes; a matrix and its transpose
    have the same spectral norm, so SN divides by the same sigma either way."""
    return 1 if isinstance(module, _TRANSPOSED) else 0


class SpectralNorm(nn.Module):
    """Parametrization ``W -> W / max(sigma(W), eps)``.

    ``eps`` in the denominator (Miyato et al. put it only in the normalization of u and v) makes
    an all-zero weight map to zero, with finite gradients, instead of NaN.

    In training mode each evaluation of the weight advances the power iteration by
    ``n_power_iterations`` (as torch's own ``spectral_norm`` does) unless paused; in eval mode it
    divides by sigma from the stored vectors. Wrap several forwards in
    ``torch.nn.utils.parametrize.cached()`` to evaluate (and iterate) once for all of them.
    """

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1, dim: int = 0,
                 eps: float = 1e-12) -> None:
        super().__init__()
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        self.dim = dim % weight.ndim if weight.ndim > 1 else 0
        self.eps = eps
        self.n_power_iterations = n_power_iterations
        if weight.ndim > 1:
            self.power = PowerIteration(weight_matrix(weight, self.dim), eps)

    def iterating(self) -> bool:
        """Whether an evaluation now advances the power iteration (training and not paused)."""
        return self.training and not self.power.paused

    def sigma(self, weight: torch.Tensor, iterate: bool) -> torch.Tensor:
        """The spectral norm estimate that divides the weight (fp32, differentiable in W)."""
        matrix = weight_matrix(weight, self.dim)
        if iterate:
            self.power.step(matrix, self.n_power_iterations)
        return self.power.sigma(matrix)

    def floor(self, dtype: torch.dtype) -> float:
        """The least divisor: ``eps``, or the dtype's smallest normal number where that is larger
        (``eps=1e-12`` is 0 in fp16)."""
        return max(self.eps, torch.finfo(dtype).tiny)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if weight.ndim == 1:  # a vector's spectral norm is its 2-norm
            return F.normalize(weight, dim=0, eps=self.eps)
        # W / max(sigma, eps): an all-zero weight (sigma = 0) stays 0 instead of 0/0 = NaN.
        sigma = self.sigma(weight, self.iterating())
        return weight / sigma.to(weight.dtype).clamp_min(self.floor(weight.dtype))

    @torch.no_grad()
    def raw_sigmas(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """Current estimates of the raw weight's spectral norm(s), without iterating."""
        return {"": self.power.sigma(weight_matrix(weight, self.dim))}

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        # Assigning module.weight sets the raw weight; sigma is re-estimated at the next steps.
        return value


# -- learnable scales (the BSN authors' gamma) ---------------------------------------------------

LEARNABLE_SCALES = ("none", "shared", "per_layer")
SHARED_GAMMA = "learnable_scale.gamma"  # its key in the hook's shared state


class LearnableScale(nn.Module):
    """Parametrization ``t -> gamma * t`` with a learned scalar gamma (possibly shared by layers).

    As in the BSN authors' code (fjxmlzn/BSN, ``same_gamma-CNN`` and ``diff_gamma-CNN``:
    ``gan/network.py`` makes the trainable ``scale`` variable(s), initial value 1.0; ``gan/op.py``
    multiplies both the normalized weight and the bias by it): it is registered after the
    normalization on the weight and on the bias, with the same gamma for both.
    """

    def __init__(self, gamma: nn.Parameter) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t * self.gamma.to(t.dtype)

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return value / self.gamma.detach().to(value.dtype)


def check_learnable_scale(value: str) -> None:
    if value not in LEARNABLE_SCALES:
        raise ConfigError(f"unknown learnable_scale {value!r}; valid options are: "
                          f"{', '.join(LEARNABLE_SCALES)}")


def add_learnable_scale(module: nn.Module, learnable_scale: str, initial: float,
                        shared: dict[str, Any] | None, name: str = "weight") -> nn.Module:
    """Multiply ``module``'s (already normalized) weight and its bias by a learned gamma.

    ``learnable_scale``: ``none`` (nothing), ``shared`` (one gamma for every layer built through
    the same hook: ``shared`` is the hook's state dict, where the first layer leaves it) or
    ``per_layer`` (one gamma per layer). ``initial``: gamma's starting value.
    """
    check_learnable_scale(learnable_scale)
    if learnable_scale == "none":
        return module
    weight = getattr(module, name)
    if learnable_scale == "shared" and shared is not None and SHARED_GAMMA in shared:
        gamma = shared[SHARED_GAMMA]
    else:
        gamma = nn.Parameter(torch.tensor(float(initial), device=weight.device))
        if learnable_scale == "shared" and shared is not None:
            shared[SHARED_GAMMA] = gamma
    parametrize.register_parametrization(module, name, LearnableScale(gamma))
    if isinstance(getattr(module, "bias", None), torch.Tensor):
        parametrize.register_parametrization(module, "bias", LearnableScale(gamma))
    return module


def learned_scales(model: nn.Module) -> dict[str, torch.Tensor]:
    """The learned gammas of ``model``, for logging: ``learnable_scale/shared`` for one gamma
    shared by several layers, ``learnable_scale/<layer>`` for a layer's own."""
    users: dict[int, list[str]] = {}
    gammas: dict[int, nn.Parameter] = {}
    for m in model.modules():
        if not parametrize.is_parametrized(m, "weight"):
            continue
        for p in m.parametrizations.weight:
            if isinstance(p, LearnableScale):
                users.setdefault(id(p.gamma), []).append(getattr(m, "norm_name", type(m).__name__))
                gammas[id(p.gamma)] = p.gamma
    out = {}
    for key, names in users.items():
        tag = "shared" if len(names) > 1 else names[0]
        out[f"learnable_scale/{tag}"] = gammas[key].detach().clone()
    return out


@register_weight_norm("sn", generator_ok=True,
                      options=("n_power_iterations", "eps", "learnable_scale"))
def spectral_norm(module: nn.Module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim: int | None = None, learnable_scale: str = "none",
                  shared: dict[str, Any] | None = None) -> nn.Module:
    """Apply spectral normalization to ``module.<name>`` and return the module.

    ``dim`` defaults to the output dimension (1 for ConvTranspose, 0 otherwise); the weight is
    viewed as a matrix of shape (size of dim, everything else). The raw weight stays in
    ``module.parametrizations.<name>.original``; the vectors u, v are buffers, so they are saved in
    ``state_dict`` and restored with it. ``learnable_scale`` (``none`` | ``shared`` |
    ``per_layer``) multiplies the normalized weight and the bias by a learned gamma starting at 1
    (``add_learnable_scale``; ``shared`` is the hook's state that one shared gamma lives in).
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"{type(module).__name__} has no tensor parameter {name!r} to normalize")
    check_learnable_scale(learnable_scale)  # refused before anything is registered
    if dim is None:
        dim = output_dim(module)
    parametrize.register_parametrization(
        module, name, SpectralNorm(weight, n_power_iterations, dim, eps))
    return add_learnable_scale(module, learnable_scale, 1.0, shared, name)
