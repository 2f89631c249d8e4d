"""Bidirectional spectral normalization (BSN) and its scaled variant (BSSN).

Lin, Sekar, Fanti, "Why Spectral Normalization Stabilizes GANs: Analysis and Improvements",
NeurIPS 2021 (code: fjxmlzn/BSN). For a convolution with weight (c_out, c_in, kh, kw):
``W_BSN = c * W / ((sigma_1 + sigma_2) / 2)`` with sigma_1 the spectral norm of W viewed as
(c_out, c_in*kh*kw) and sigma_2 of W viewed as (c_in, c_out*kh*kw), each estimated by its own
persistent power iteration. For a Linear layer both views coincide and BSN equals SN (times c).
``scale`` c = 1 is BSN; other values are BSSN (the paper sweeps c in about 0.7..4 on CIFAR-10).
``learnable_scale=shared|per_layer`` learns c (one gamma for all layers, or one per layer), as
the authors' code does in its gamma variants.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.norms.power_iteration import PowerIteration, SecondDimPowerIteration, weight_matrix
from spectral_gan.norms.registry import register_weight_norm
from spectral_gan.norms.spectral import (SpectralNorm, add_learnable_scale, check_learnable_scale,
                                         output_dim)


class BidirectionalSpectralNorm(SpectralNorm):
    """Parametrization ``W -> scale * W / mean(sigma_out, sigma_in)`` (conv), ``scale * W / sigma`` (linear)."""

    def __init__(self, weight: torch.Tensor, scale: float = 1.0, n_power_iterations: int = 1,
                 dim: int = 0, eps: float = 1e-12) -> None:
        super().__init__(weight, n_power_iterations, dim, eps)
        self.scale = float(scale)
        self.bidirectional = weight.ndim > 2
        if self.bidirectional:
            # The input-channel view: the other of the first two dims becomes the rows.
            self.in_dim = 1 - self.dim if self.dim in (0, 1) else 0
            self.power_in = (SecondDimPowerIteration if self.in_dim == 1 else PowerIteration)(
                self.matrix_in(weight), eps)

    def matrix_in(self, weight: torch.Tensor) -> torch.Tensor:
        """The input-channel view as ``power_in`` takes it (for Conv a view, never a copy)."""
        return weight.flatten(2) if self.in_dim == 1 else weight_matrix(weight, self.in_dim)

    def sigma(self, weight: torch.Tensor, iterate: bool) -> torch.Tensor:
        sigma_out = super().sigma(weight, iterate)
        if not self.bidirectional:
            return sigma_out
        matrix_in = self.matrix_in(weight)
        if iterate:
            self.power_in.step(matrix_in, self.n_power_iterations)
        return (sigma_out + self.power_in.sigma(matrix_in)) / 2

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return super().forward(weight) * self.scale

    @torch.no_grad()
    def raw_sigmas(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.bidirectional:  # Linear: one view, as SN
            return super().raw_sigmas(weight)
        return {"out": self.power.sigma(weight_matrix(weight, self.dim)),
                "in": self.power_in.sigma(self.matrix_in(weight))}


@register_weight_norm("bsn", generator_ok=True,
                      options=("scale", "n_power_iterations", "eps", "learnable_scale"))
def bidirectional_spectral_norm(module: nn.Module, scale: float = 1.0, n_power_iterations: int = 1,
                                eps: float = 1e-12, name: str = "weight",
                                dim: int | None = None, learnable_scale: str = "none",
                                shared: dict[str, Any] | None = None) -> nn.Module:
    """Apply BSN (``scale=1``) or BSSN (``scale=c``) to ``module.<name>`` and return the module.

    ``learnable_scale`` (``shared`` | ``per_layer``) learns c instead, as the BSN authors' gamma
    variants do (fjxmlzn/BSN ``same_gamma-CNN``, ``diff_gamma-CNN``): a learned gamma starting at
    ``scale`` multiplies the normalized weight and the bias (``spectral.add_learnable_scale``),
    in place of the constant, which (``no_gamma-CNN``) multiplies the weight only.
    """
    check_learnable_scale(learnable_scale)  # refused before anything is registered
    learned = learnable_scale != "none"
    weight = getattr(module, name)
    parametrize.register_parametrization(
        module, name, BidirectionalSpectralNorm(weight, 1.0 if learned else scale,
                                                n_power_iterations,
                                                output_dim(module) if dim is None else dim, eps))
    return add_learnable_scale(module, learnable_scale, scale, shared, name)
