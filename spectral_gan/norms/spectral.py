"""Spectral normalization, W_SN = W / sigma(W).

Miyato, Kataoka, Koyama, Yoshida, "Spectral Normalization for Generative Adversarial Networks",
ICLR 2018 (Algorithm 1). sigma is estimated by power iteration with persistent vectors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.norms.power_iteration import PowerIteration, weight_matrix
from spectral_gan.norms.registry import register_weight_norm

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def output_dim(module: nn.Module) -> int:
    """The weight dimension that indexes output features: 1 for ConvTranspose, else 0."""
    return 1 if isinstance(module, _TRANSPOSED) else 0


class SpectralNorm(nn.Module):
    """Parametrization ``W -> W / sigma(W)``.

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

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if weight.ndim == 1:  # a vector's spectral norm is its 2-norm
            return F.normalize(weight, dim=0, eps=self.eps)
        return weight / self.sigma(weight, self.iterating()).to(weight.dtype)

    @torch.no_grad()
    def raw_sigmas(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """Current estimates of the raw weight's spectral norm(s), without iterating."""
        return {"": self.power.sigma(weight_matrix(weight, self.dim))}

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        # Assigning module.weight sets the raw weight; sigma is re-estimated at the next steps.
        return value


@register_weight_norm("sn", generator_ok=True, options=("n_power_iterations", "eps"))
def spectral_norm(module: nn.Module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim: int | None = None) -> nn.Module:
    """Apply spectral normalization to ``module.<name>`` and return the module.

    ``dim`` defaults to the output dimension (1 for ConvTranspose, 0 otherwise); the weight is
    viewed as a matrix of shape (size of dim, everything else). The raw weight stays in
    ``module.parametrizations.<name>.original``; the vectors u, v are buffers, so they are saved in
    ``state_dict`` and restored with it.
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"{type(module).__name__} has no tensor parameter {name!r} to normalize")
    if dim is None:
        dim = output_dim(module)
    parametrize.register_parametrization(
        module, name, SpectralNorm(weight, n_power_iterations, dim, eps))
    return module
