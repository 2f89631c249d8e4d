"""The two optimizers of a GAN run: their learning-rate decay, and the AMP loss scale."""
from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR


def with_lr_decay(d_opt: torch.optim.Optimizer, g_opt: torch.optim.Optimizer, settings: Any,
                  total: int) -> Any:
    """What ``configure_optimizers`` returns: ``[D's, G's]``, with ``lr_decay=linear`` each with
    a LambdaLR. Linear decay to 0 (SNGAN-projection): the schedulers step once per generator
    update, so the k-th update (D's and G's) runs at lr * (1 - (k - start) / (total - start))."""
    if settings.lr_decay == "none":
        return [d_opt, g_opt]
    start = settings.lr_decay_start

    def factor(done: int) -> float:
        if done <= start or total <= start:
            return 1.0
        return max(0.0, 1.0 - (done - start) / (total - start))

    return [d_opt, g_opt], [LambdaLR(d_opt, factor), LambdaLR(g_opt, factor)]


def amp_scale(trainer: Any) -> torch.Tensor | float | None:
    """GradScaler's current scale under ``16-mixed`` (None without one): the penalties scale
    D's output by it before taking the input gradient (``spectral_gan.penalties``). Read
    from Lightning's precision plugin, as the tensor on the device (no host sync) once the
    scaler has made it, its initial value before."""
    scaler = getattr(trainer.precision_plugin, "scaler", None) if trainer is not None else None
    if scaler is None or not scaler.is_enabled():
        return None
    scale = getattr(scaler, "_scale", None)
    return scale.detach().clone() if scale is not None else scaler.get_scale()
