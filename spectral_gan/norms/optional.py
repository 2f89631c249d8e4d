"""Optional spectral normalization (OSN): spectral normalization applied selectively, per layer.

No paper defines OSN precisely; this definition is ours, close to spectral-norm clipping
(Gouk et al., "Regularisation of neural networks by enforcing Lipschitz continuity", 2018/2021)
and per-layer SN. Three deciders, combinable:

(a) a layer mask: ``norm.layers`` names the layers that may be normalized (NormHook applies it);
(b) the mode: ``clip`` gives ``W / max(1, sigma / c)`` (normalize only where sigma exceeds the
    threshold c; the comparison carries no gradient, the division does), ``full`` gives
    ``c * W / sigma`` (SN scaled to c);
(c) an adaptive gate, one per layer, each decided by a signal chosen with ``gate``:

    - ``sigma``: the layer's own raw spectral norm over the threshold, ``sigma(W) / c`` (the
      power-iteration estimate, no extra iteration): each layer switches when *its* weight grows;
    - ``grad_norm``: the layer's own weight-gradient norm ``||dL_D/dW||`` of the last
      discriminator update (the raw weight's gradient, after DDP's gradient averaging);
    - ``logit_gap``: the discriminator's real/fake logit gap ``mean D(x) - mean D(G(z))``, one
      global signal that every layer follows (all gates then switch together).

    After each discriminator update a gate opens when its signal rises above ``gate_on`` and
    closes again only when it falls below ``gate_off`` (hysteresis, ``gate_off < gate_on``).
    Gates start closed (plain weights), so an unstressed discriminator trains unconstrained. The
    power iteration runs whatever the gate says, so sigma is current when a gate opens.

Under DDP the signals are averaged over ranks (one ``all_reduce`` of all the layers' signals per
update, when ``torch.distributed`` is initialized) before any gate moves, so every rank opens
and closes the same gates at the same step: a local logit gap differs between ranks, and a gate
that differed would give the ranks different discriminators. Each gate is logged per layer
(``osn_gate/<layer>``, ``norms.monitor``).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.errors import ConfigError
from spectral_gan.norms.power_iteration import weight_matrix
from spectral_gan.norms.registry import PerUpdate, register_weight_norm
from spectral_gan.norms.spectral import SpectralNorm, output_dim

MODES = ("clip", "full")
GATES = ("none", "sigma", "grad_norm", "logit_gap")
# The gates whose signal each layer computes itself (the training step supplies only logit_gap).
LAYER_SIGNALS = {"sigma": "layer_sigma", "grad_norm": "layer_grad_norm"}


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
        # eps keeps an all-zero weight finite in full mode (sigma = 0), as in SpectralNorm.
        sigma = self.sigma(weight, self.iterating()).clamp_min(self.eps)
        ratio = sigma / self.threshold
        if self.mode == "clip":
            ratio = torch.where(ratio > 1.0, ratio, torch.ones_like(ratio))
        return self.gate * ratio + (1.0 - self.gate)  # closed gate: divide by 1

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Logged per layer by the monitor: the gate (1 open, 0 closed)."""
        return {"osn_gate": self.gate}

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if weight.ndim == 1:
            return super().forward(weight)
        return weight / self.divisor(weight).to(weight.dtype)

    @torch.no_grad()
    def signal(self, original: torch.Tensor, signals: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """This layer's gate signal (fp32 scalar on the weight's device), before DDP averaging.

        ``original`` is the raw weight (``parametrizations.weight.original``)."""
        if self.gate_signal == "sigma":
            s = self.power.sigma(weight_matrix(original, self.dim)) / self.threshold
        elif self.gate_signal == "grad_norm":
            grad = original.grad
            s = grad.detach().float().norm() if grad is not None else original.new_zeros(())
        else:
            s = signals[self.gate_signal]
        return s.to(self.gate.device, torch.float32)

    @torch.no_grad()
    def apply_signal(self, s: torch.Tensor) -> None:
        """Hysteresis: open above gate_on, close below gate_off; no host sync."""
        opened = torch.where(self.gate > 0.5, s >= self.gate_off, s > self.gate_on)
        self.gate.copy_(opened.float())

    def update_gate(self, signals: Mapping[str, torch.Tensor],
                    original: torch.Tensor | None = None) -> None:
        """Move this one gate from ``signals`` (no DDP averaging: see ``update_osn_gates``)."""
        if self.gate_signal != "none":
            self.apply_signal(self.signal(original, signals))


def gated_layers(model: nn.Module) -> list[tuple[OptionalSpectralNorm, torch.Tensor]]:
    """Each OSN parametrization of ``model`` with its raw weight, in model order."""
    out = []
    for m in model.modules():
        if isinstance(m, parametrize.ParametrizationList):
            for p in m:
                if isinstance(p, OptionalSpectralNorm):
                    out.append((p, m.original))
    return out


def osn_layers(model: nn.Module) -> list[OptionalSpectralNorm]:
    return [p for p, _ in gated_layers(model)]


def gate_signals(model: nn.Module) -> set[str]:
    """What the model's OSN gates need after each update (``gate=none`` layers need nothing):
    ``logit_gap`` from the training step; ``layer_sigma`` / ``layer_grad_norm`` name signals the
    layers read themselves (listed so that the training step runs the update)."""
    return {LAYER_SIGNALS.get(p.gate_signal, p.gate_signal) for p in osn_layers(model)
            if p.gate_signal != "none"}


def average_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over DDP ranks (SUM / world size: gloo has no AVG); unchanged when
    ``torch.distributed`` is not initialized. One collective, on device, no host sync."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values = values / dist.get_world_size()
    return values


def update_osn_gates(model: nn.Module, signals: Mapping[str, torch.Tensor]) -> None:
    """Per-update hook: every gated layer's signal, averaged over ranks, moves its gate."""
    gated = [(p, w) for p, w in gated_layers(model) if p.gate_signal != "none"]
    if not gated:
        return
    values = torch.stack([p.signal(w, signals).to(gated[0][0].gate.device) for p, w in gated])
    values = average_over_ranks(values)
    for (p, _), s in zip(gated, values):
        p.apply_signal(s)


# The gates follow training signals: the training step runs the hook after each D update.
@register_weight_norm("osn", generator_ok=True,
                      options=("mode", "threshold", "gate", "gate_on", "gate_off",
                               "n_power_iterations", "eps"),
                      per_update=PerUpdate(signals=gate_signals, update=update_osn_gates))
def optional_spectral_norm(module: nn.Module, mode: str = "clip", threshold: float = 1.0,
                           gate: str = "none", gate_on: float = 2.0, gate_off: float = 1.0,
                           n_power_iterations: int = 1, eps: float = 1e-12, name: str = "weight",
                           dim: int | None = None) -> nn.Module:
    """Apply optional spectral normalization to ``module.<name>`` and return the module.

    ``gate``: ``none`` (always on, mode decides), ``sigma`` / ``grad_norm`` (each layer by its
    own signal) or ``logit_gap`` (every layer by D's logit gap); see the module docstring.
    """
    weight = getattr(module, name)
    parametrize.register_parametrization(
        module, name, OptionalSpectralNorm(weight, mode, threshold, gate, gate_on, gate_off,
                                           n_power_iterations,
                                           output_dim(module) if dim is None else dim, eps))
    return module
