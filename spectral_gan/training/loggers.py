"""What the training loop writes to its loggers: scalars, the HParams table, sample pictures.

Functions of the loggers and tensors only (no LightningModule), so they are usable from
anything that holds Lightning loggers.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

import torch
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from torchvision.utils import save_image


def as_floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in metrics.items()}


def log_scalars(loggers: Iterable[Logger], metrics: dict[str, Any], step: int) -> None:
    """Straight to the loggers, at generator step ``step``, each saved after it (as Lightning's
    own logging does: TensorBoard's file is flushed, a CSV written)."""
    metrics = as_floats(metrics)
    for logger in loggers:
        logger.log_metrics(metrics, step=step)
        logger.save()


def log_hparams(loggers: Iterable[Logger], hparams: dict[str, Any], declared: dict[str, float]) -> None:
    """The run's settings; TensorBoard's HParams view shows only the metrics ``declared`` here."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams, metrics=declared)
        else:
            logger.log_hyperparams(hparams)


def log_picture(loggers: Iterable[Logger], picture: torch.Tensor, step: int,
                sample_dir: str | None) -> None:
    """A sample grid or scatter plot to TensorBoard and, if given, to ``sample_dir/step_N.png``."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image("samples", picture, step)
    if sample_dir:
        os.makedirs(sample_dir, exist_ok=True)
        save_image(picture, os.path.join(sample_dir, f"step_{step:06d}.png"))


def grad_norm(parameters: Iterable[torch.nn.Parameter], device: torch.device) -> torch.Tensor:
    """2-norm of all gradients of ``parameters`` (0 when none has one), on the device."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    return torch.nn.utils.get_total_norm(grads)


def training_scalars(stats: dict[str, Any], loss_g: torch.Tensor, d_opt, g_opt,
                     d_grad_norm: torch.Tensor, penalty_name: str | None) -> dict[str, Any]:
    """The per-log-step scalars of one training step (tensors; ``as_floats`` syncs them)."""
    metrics = {
        "loss/d": stats["loss_d"], "loss/g": loss_g,
        "d/real": stats["d_real"].mean(), "d/fake": stats["d_fake"].mean(),
        "lr/d": d_opt.param_groups[0]["lr"], "lr/g": g_opt.param_groups[0]["lr"],
        "grad_norm/d": d_grad_norm,
    }
    if stats["penalty"] is not None or stats.get("lecam") is not None:
        metrics["loss/d_adversarial"] = stats["loss_adv"]
    if stats["penalty"] is not None:
        metrics[f"loss/penalty_{penalty_name}"] = stats["penalty"]
    if stats.get("lecam") is not None:
        metrics["loss/lecam"] = stats["lecam"]  # weighted, as added to loss/d
    return metrics
