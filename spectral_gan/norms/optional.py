"""Optional spectral normalization (OSN): spectral normalization applied selectively.

No paper defines OSN precisely; this definition is ours, close to spectral-norm clipping
(Gouk et al., "Regularisation of neural networks by enforcing Lipschitz continuity", 2018/2021)
and per-layer SN. Three deciders, combinable:

(a) a layer mask: ``norm.layers`` names the layers that may be normalized (NormHook applies it);
(b) the mode: ``clip`` gives ``W / max(1, sigma / c)`` (normalize only where sigma exceeds the
    threshold c; the comparison carries no gradient, the division does), ``full`` gives
    ``c * W / sigma`` (SN scaled to c);
(c) an adaptive gate: with ``gate=logit_gap`` or ``gate=grad_norm`` each layer's normalization
    is switched on when the discriminator's real/fake logit gap (mean D(x) - mean D(G(z))) or its
    gradient norm rises above ``gate_on``, and off again only when it falls below ``gate_off``
    (hysteresis, ``gate_off < gate_on``). Gates start closed (plain weights), so an unstressed
    discriminator trains unconstrained. The power iteration runs whatever the gate says, so sigma
    is current when a gate opens.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.errors import ConfigError
from spectral_gan.norms.registry import PerUpdate, register_weight_norm
from spectral_gan.norms.spectral import SpectralNorm, output_dim

MODES = ("clip", "full")
GATES = ("none", "logit_gap", "grad_norm")


class OptionalSpectralNorm(SpectralNorm):
    def __init__(self, weight: torch.Tensor, mode: str = "clip", threshold: float = 1.0,
                 gate: str = "none", gate_on: float = 2.0, gate_off: float = 1.0,
                 n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown OSN mode {mode!r}; valid options are: {', '.join(MODES)}")
        if gate not in GATES:
            raise ConfigError(f"unknown OSN gate {gate!r}; valid options are: {', '.join(GATES)}")
        if gate != "none" and not gate_off < gate_on:
            raise ConfigError(f"OSN hysteresis needs gate_off < gate_on, got {gate_off} and {gate_on}")
        if threshold <= 0:
            raise ConfigError(f"OSN threshold must be positive, got {threshold}")
        super().__init__(weight, n_power_iterations, dim, eps)
        self.mode, self.threshold, self.gate_signal = mode, float(threshold), gate
        self.gate_on, self.gate_off = float(gate_on), float(gate_off)
        self.register_buffer("gate", torch.tensor(0.0 if gate != "none" else 1.0))

    def divisor(self, weight: torch.Tensor) -> torch.Tensor:
        ratio = self.sigma(weight, self.iterating()) / self.threshold
        if self.mode == "clip":
            ratio = torch.where(ratio > 1.0, ratio, torch.ones_like(ratio))
        return self.gate * ratio + (1.0 - self.gate)  # closed gate: divide by 1

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight / self.divisor(weight).to(weight.dtype)

    @torch.no_grad()
    def update_gate(self, signals: Mapping[str, torch.Tensor]) -> None:
        """Hysteresis: open above gate_on, close below gate_off; no host sync."""
        if self.gate_signal == "none":
            return
        s = signals[self.gate_signal].to(self.gate.device, torch.float32)
        opened = torch.where(self.gate > 0.5, s >= self.gate_off, s > self.gate_on)
        self.gate.copy_(opened.float())


def osn_layers(model: nn.Module) -> list[OptionalSpectralNorm]:
    return [m for m in model.modules() if isinstance(m, OptionalSpectralNorm)]


def gate_signals(model: nn.Module) -> set[str]:
    """The signals the model's OSN gates follow (``gate=none`` layers need none)."""
    return {p.gate_signal for p in osn_layers(model) if p.gate_signal != "none"}


def update_osn_gates(model: nn.Module, signals: Mapping[str, torch.Tensor]) -> None:
    for p in osn_layers(model):
        p.update_gate(signals)


# The gates follow a training signal: the training step feeds it after each D update.
@register_weight_norm("osn", generator_ok=True,
                      options=("mode", "threshold", "gate", "gate_on", "gate_off",
                               "n_power_iterations", "eps"),
                      per_update=PerUpdate(signals=gate_signals, update=update_osn_gates))
def optional_spectral_norm(module: nn.Module, mode: str = "clip", threshold: float = 1.0,
                           gate: str = "none", gate_on: float = 2.0, gate_off: float = 1.0,
                           n_power_iterations: int = 1, eps: float = 1e-12, name: str = "weight",
                           dim: int | None = None) -> nn.Module:
    """Apply optional spectral normalization to ``module.<name>`` and return the module."""
    weight = getattr(module, name)
    parametrize.register_parametrization(
        module, name, OptionalSpectralNorm(weight, mode, threshold, gate, gate_on, gate_off,
                                           n_power_iterations,
                                           output_dim(module) if dim is None else dim, eps))
    return module
