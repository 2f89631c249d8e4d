"""A normalization defined outside ``spectral_gan``, as a user would write one (tests only).

``W -> target * W / ||W||_F``: the Frobenius norm bounds the spectral norm from above
(``sigma_1 <= ||W||_F``), so this is a cheaper, looser Lipschitz control than SN; it is here to
prove that one file plus one YAML (``norm.module: tests.toy_norm``) adds a method.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.norms import register_weight_norm


class FrobeniusNorm(nn.Module):
    def __init__(self, target: float) -> None:
        super().__init__()
        self.target = float(target)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return self.target * weight / weight.norm().clamp_min(1e-12)


@register_weight_norm("frobenius", generator_ok=True, options=("target",))
def frobenius_norm(module: nn.Module, target: float = 1.0) -> nn.Module:
    parametrize.register_parametrization(module, "weight", FrobeniusNorm(target))
    return module
