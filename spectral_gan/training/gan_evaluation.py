"""The GAN module's evaluations and checkpoint hooks: when an evaluation is due, running it on the
EMA (or raw) generator with its own noise, the best score so far, the health verdict, and what a
checkpoint carries besides the weights (best score, divergence, RNG, the run's config, step unit).

A mixin of ``spectral_gan.training.gan.GAN``: it reads the module's ``evaluator``, ``schedule``,
``guard``, ``paths``, ``samples`` and ``log_scalars``."""
from __future__ import annotations

import logging
import math
from typing import Any

import torch

from spectral_gan.training import ema as ema_lib
from spectral_gan.training import health
from spectral_gan.checkpoints.load import STEP_UNIT, count_generator_steps
from spectral_gan.metrics.registry import is_improvement
from spectral_gan.checkpoints.resume import stored_best
from spectral_gan.training.rng_state import capture_rng


log = logging.getLogger(__name__)


class EvaluationHooks:
    def evaluation_due(self, step: int) -> bool:
        """Whether generator step ``step`` ends with an evaluation (StepCheckpoint saves
        ``last.ckpt`` before one)."""
        return self.evaluator is not None and self.schedule.due(self.schedule.eval_every, step,
                                                                self.total_steps)

    def run_evaluation(self, step: int) -> dict[str, float]:
        # Fixed evaluation noise from its own generator: the training RNG stream stays untouched.
        gen = torch.Generator().manual_seed(self.seed + 1)

        def generate(n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
            z = torch.randn(n, self.G.z_dim, generator=gen).to(self.device)
            return self.samples(z, None if labels is None else labels.to(self.device))

        # The metrics may draw from the global RNG (torchmetrics' IS and KID shuffle with it): an
        # evaluation must leave the training stream as it found it, or a run resumed from a
        # checkpoint written after one would draw other noise than the uninterrupted run.
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            metrics = self.evaluator.evaluate(generate, self.device)
        primary = self.evaluator.primary
        if primary in metrics:
            # The best so far, for the metrics/best_* curve; best.ckpt is written by
            # spectral_gan.training.callbacks.BestCheckpoint (a ModelCheckpoint) from callback_metrics.
            value = metrics[primary]
            if is_improvement(primary, value, self.best_metric):
                self.best_metric = value
            metrics[primary.replace("metrics/", "metrics/best_")] = self.best_metric
        self.last_metrics = metrics
        self.evaluated_step = step  # callbacks that act on evaluations (BestCheckpoint) read it
        self.log_scalars({**metrics, **{k.replace("metrics/", "hp/"): v for k, v in metrics.items()}}, step)
        self.check_health(step, metrics)
        return metrics

    def check_health(self, step: int, scores: dict[str, float] | None = None) -> list[str]:
        """Say plainly whether the samples have collapsed (spectral_gan/training/health.py): log
        ``health/collapsed`` (1 or 0) and ``health/sample_diversity`` (fraction of the data's), and
        warn with the reasons."""
        ratio = None
        if self._data_diversity:
            ratio = health.diversity(self.samples()) / self._data_diversity
        self.health_reasons = health.assess(ratio, self._stalled_logs, scores)
        values = {"health/collapsed": float(bool(self.health_reasons))}
        if ratio is not None:
            values["health/sample_diversity"] = ratio
        self.log_scalars(values, step)
        # Printed once a run, and not before the EMA generator has started (the samples of an
        # EMA that has not begun averaging are a young generator's: a smoke run's false alarm);
        # health/collapsed is logged at every check either way.
        ema_pending = self.G_ema is not None and not ema_lib.has_started(self.G_ema)
        if (self.health_reasons and not ema_pending and not self._collapse_warned
                and self.trainer.is_global_zero):
            self._collapse_warned = True
            from tqdm import tqdm

            with tqdm.external_write_mode():  # on a line of its own, not inside the progress bar
                log.warning("generator step %d: the samples have collapsed: %s", step,
                            "; ".join(self.health_reasons))
        return self.health_reasons

    # -- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["best_metric"] = self.best_metric
        checkpoint["diverged"] = self.diverged
        checkpoint["skipped_steps"] = self.skipped_steps
        checkpoint["rng"] = capture_rng()
        checkpoint["spectral_gan_config"] = self.run_config
        checkpoint[STEP_UNIT[0]] = STEP_UNIT[1]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        count_generator_steps(checkpoint)  # one of the optimizer-step count: before loops restore
        # earlier versions stored +inf for "none yet", whatever the metric's direction
        best = checkpoint.get("best_metric")
        if best is not None and not math.isinf(best):
            self.best_metric = best
        # Resumed from an older checkpoint than best.ckpt: its best must not replace a better one.
        on_disk = stored_best(self.paths.best_checkpoint)
        primary = self.evaluator.primary if self.evaluator is not None else None
        if on_disk is not None and primary and is_improvement(primary, on_disk, self.best_metric):
            self.best_metric = on_disk
        self.guard.skipped_steps = checkpoint.get("skipped_steps", 0)
        self._pending_rng = checkpoint.get("rng")  # applied in on_train_start, after set-up
