"""Exponential moving average of the generator's weights, used for samples and evaluation.

The average is a ``torch.optim.swa_utils.AveragedModel`` (so checkpoints hold it as
``G_ema.module.*`` and ``G_ema.n_averaged``) updated as ``get_ema_multi_avg_fn`` would, but
without reading ``n_averaged`` on the host (two GPU syncs per step). Averaging generator weights
over the last part of training gives better samples than the last iterate (Yazici et al. 2019,
"The unusual effectiveness of averaging in GAN training").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from spectral_gan.errors import ConfigError
from spectral_gan.norms import power_iterations


@dataclass(frozen=True)
class EMASettings:
    """``decay`` per generator step (0: no EMA) from generator step ``start`` on.

    The first update copies the generator; that copy then weighs ``decay ** (steps - start)`` in
    the final average, so a decay whose horizon 1 / (1 - decay) is long against the averaging
    period keeps mostly the young generator of step ``start``.
    """

    decay: float = 0.0
    start: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.decay) < 1.0:
            raise ConfigError(f"ema.decay must be in [0, 1) (0 disables the EMA), got {self.decay}")
        if int(self.start) < 0:
            raise ConfigError(f"ema.start must be a generator step >= 0, got {self.start}")


def averaged_copy(generator: nn.Module, settings: EMASettings) -> AveragedModel | None:
    """The EMA model of ``generator`` (None without EMA): averaged, never trained, so it is kept
    out of autograd and out of DDP's gradient reduction."""
    if settings.decay <= 0:
        return None
    ema = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(settings.decay), use_buffers=True)
    return ema.requires_grad_(False)


def has_started(ema: AveragedModel | None) -> bool:
    return ema is not None and bool(ema.n_averaged > 0)


@torch.no_grad()
def update(ema: AveragedModel, generator: nn.Module, decay: float, first: bool) -> None:
    """One EMA step of parameters and float buffers; ``first`` copies, as AveragedModel does."""
    pairs = list(zip([*ema.module.parameters(), *ema.module.buffers()],
                     [*generator.parameters(), *generator.buffers()]))
    floats = [(a, b.detach()) for a, b in pairs if a.is_floating_point()]
    if first:
        torch._foreach_copy_([a for a, _ in floats], [b for _, b in floats])
    elif floats:
        torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1.0 - decay)
    for a, b in pairs:  # counters (BatchNorm's num_batches_tracked): the current value
        if not a.is_floating_point():
            a.copy_(b)
    ema.n_averaged += 1
    # g_norm: an average of unit vectors is not one; take the generator's current u, v instead.
    for ema_p, p in zip(power_iterations(ema.module), power_iterations(generator)):
        ema_p.u.copy_(p.u)
        ema_p.v.copy_(p.v)
