"""The GAN training step as a LightningModule (manual optimization), and its logging.

One ``training_step`` is one generator update, preceded by ``n_dis`` discriminator updates; the
loader batch holds the ``n_dis`` real batches. Lightning's ``global_step`` is the generator step:
only the generator's optimizer counts its steps (``step_discriminator``), so ``max_steps``,
checkpoint cadences, the progress bar and every logged x-axis count generator steps without
conversion.

Power-iteration cadence: each discriminator update evaluates D's normalized weights once inside
``parametrize.cached()`` (one iteration, however many D forwards), and the generator update runs
with the iteration paused.

Class-conditional models (a generator with ``conditional=True`` and a projection discriminator):
the loader batches are ``(images, labels)``, generated samples get labels drawn from
``label_probs`` (uniform, or the data's class frequencies: ``fake_labels``), and G and D are
called as ``G(z, y)`` and ``D(x, y)``. The sample grid has one row per class.

Settings come grouped (``spectral_gan.settings.GANSettings``); the divergence guard
(``divergence.py``), the EMA (``ema.py``) and the RNG state of checkpoints (``run_state.py``)
live in their own files.
"""
from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any, Callable, Iterable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.optim.lr_scheduler import LambdaLR

from spectral_gan import ema as ema_lib
from spectral_gan import health
from spectral_gan.checkpoint import STEP_UNIT, count_generator_steps
from spectral_gan.divergence import DivergenceGuard
from spectral_gan.errors import ConfigError
from spectral_gan.losses import AdversarialLoss
from spectral_gan.models.conditional import bind_labels
from spectral_gan.models.pack import pack_of, packed_count, penalty_inputs
from spectral_gan.metrics.registry import is_improvement, worst_value
from spectral_gan.norms import per_update_signals, power_iteration_paused, run_per_update
from spectral_gan.norms.lipschitz import LayerConstants, lipschitz_report, sample_count
from spectral_gan.norms.monitor import (activation_drift, condition_numbers, layer_grad_norms,
                                        spectral_report)
from spectral_gan.norms.spectral import learned_scales
from spectral_gan.resume import stored_best
from spectral_gan import run_logging
from spectral_gan.run_logging import as_floats, grad_norm, log_hparams, log_picture, training_scalars
from spectral_gan.run_state import capture_rng, restore_rng
from spectral_gan.settings import GANSettings, RunPaths
from spectral_gan.speed import joint_d_pass_on
from spectral_gan.visualize import image_grid, scatter_image

log = logging.getLogger(__name__)

def _no_closure() -> None:
    return None


OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
DEFAULT_ADAM = partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))
# The sample grid of a class-conditional generator: one row per class (at most this many
# classes), this many samples per row, each with its own fixed noise.
GRID_COLUMNS = 8
GRID_MAX_CLASSES = 16


class GAN(pl.LightningModule):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss,
        g_optimizer: OptimizerFactory = DEFAULT_ADAM,
        d_optimizer: OptimizerFactory = DEFAULT_ADAM,
        settings: GANSettings | None = None,
        paths: RunPaths | None = None,
        evaluator: Any = None,
        run_config: dict[str, Any] | None = None,
        hparams: dict[str, Any] | None = None,
        reference_points: torch.Tensor | None = None,
        label_probs: torch.Tensor | None = None,
    ) -> None:
        """``run_config``: what spectral-gan-sample / -eval need to rebuild the networks from a
        checkpoint; ``hparams``: what the HParams view shows; ``reference_points``: the modes of
        a 2-D mixture, drawn under its sample clouds; ``label_probs``: for a class-conditional
        generator, the probability of each class among generated samples (None: uniform)."""
        super().__init__()
        self.automatic_optimization = False
        self.settings = settings = settings or GANSettings()
        self.paths = paths or RunPaths()
        self.schedule = settings.schedule
        self.G, self.D, self.loss = generator, discriminator, loss
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.n_dis, self.batch_size = self.schedule.n_dis, self.schedule.batch_size
        self.g_batch_size = settings.g_batch_size or self.batch_size
        if self.g_batch_size % pack_of(discriminator):
            raise ConfigError(f"g_batch_size={self.g_batch_size} is not a multiple of "
                              f"discriminator.pack={pack_of(discriminator)}: the discriminator "
                              f"judges tuples of {pack_of(discriminator)} samples; set g_batch_size "
                              f"to a multiple of it (or null: batch_size)")
        self.reference_points = reference_points
        self.G_ema = ema_lib.averaged_copy(generator, settings.ema)
        self.num_classes = (getattr(generator, "num_classes", None)
                            if getattr(generator, "conditional", False) else None)
        self.conditional = self.num_classes is not None
        num_samples, fixed_y = self.schedule.num_samples, None
        if self.conditional:
            k = int(self.num_classes)
            probs = torch.full((k,), 1.0 / k) if label_probs is None else label_probs.float()
            if probs.shape != (k,) or not bool((probs >= 0).all()) or float(probs.sum()) <= 0:
                raise ValueError(f"label_probs must be {k} non-negative class weights, got {probs}")
            # Not checkpointed: rebuilt from the data and fake_labels on every start.
            self.register_buffer("label_probs", probs / probs.sum(), persistent=False)
            rows = min(k, GRID_MAX_CLASSES)
            num_samples = rows * GRID_COLUMNS
            fixed_y = torch.arange(rows).repeat_interleave(GRID_COLUMNS)
        z = torch.randn(num_samples, generator.z_dim,
                        generator=torch.Generator().manual_seed(settings.seed))
        self.register_buffer("fixed_z", z)
        self.register_buffer("fixed_y", fixed_y)  # None (no buffer) when unconditional
        self.penalty = settings.penalty.penalty
        self.penalty_weight = settings.penalty.effective_weight
        self.gate_signals = per_update_signals(discriminator)
        # Warm-started operator-norm vectors and input sizes of D's convolutions (not checkpointed)
        self._constants = LayerConstants(settings.monitor.lipschitz_iterations, settings.seed)
        self.evaluator = evaluator
        primary = evaluator.primary if evaluator is not None else None
        self.best_metric = worst_value(primary) if primary else math.inf  # direction: metrics/registry.py
        self.guard = DivergenceGuard(settings.divergence, self.paths.diverged_checkpoint)
        self.joint_d_pass = settings.joint_d_pass
        self._joint = joint_d_pass_on(self.joint_d_pass, discriminator, None)  # auto: on_train_start
        self._pending_rng: dict[str, Any] | None = None
        self.seed = settings.seed
        self.run_config = run_config
        self.run_hparams = hparams or {}
        if hparams:
            self.save_hyperparameters(hparams, logger=False)
        self._hparams_logged = False
        self._data_diversity: float | None = None  # of the first real batch (health checks)
        self._stalled_logs = 0  # consecutive log steps with D's gradient vanished
        self.evaluated_step: int | None = None  # generator step of the last evaluation
        self.health_reasons: list[str] = []

    # -- optimizers and step counts -----------------------------------------------------------

    @property
    def joint_d_pass_active(self) -> bool:
        """Whether D scores real and fake in one pass now (``speed.joint_d_pass`` resolved)."""
        return self._joint
    def configure_optimizers(self):
        d_opt, g_opt = self.d_optimizer(self.D.parameters()), self.g_optimizer(self.G.parameters())
        if self.settings.lr_decay == "none":
            return [d_opt, g_opt]
        # Linear decay to 0 (SNGAN-projection): the scheduler steps once per generator update,
        # so the k-th update (D's and G's) runs at lr * (1 - (k - start) / (steps - start)).
        start, total = self.settings.lr_decay_start, max(self.total_steps, 1)

        def factor(done: int) -> float:
            if done <= start or total <= start:
                return 1.0
            return max(0.0, 1.0 - (done - start) / (total - start))

        return [d_opt, g_opt], [LambdaLR(d_opt, factor), LambdaLR(g_opt, factor)]

    def _schedulers(self) -> list:
        if self.settings.lr_decay == "none":
            return []
        found = self.lr_schedulers()
        return [] if found is None else found if isinstance(found, list) else [found]

    @property
    def gen_step(self) -> int:
        """Generator updates completed."""
        return self.trainer.global_step

    @property
    def total_steps(self) -> int:
        return self.trainer.max_steps

    def step_discriminator(self, d_opt: torch.optim.Optimizer) -> None:
        """D's optimizer step, taken as ``LightningOptimizer.step`` takes it (through the
        strategy and precision plugin: AMP's GradScaler, the before-step hooks) but not counted:
        Lightning's ``global_step`` counts the generator's steps only, the GAN's own unit."""
        self.trainer.strategy.optimizer_step(d_opt, closure=_no_closure)

    @property
    def diverged(self) -> dict[str, Any] | None:
        return self.guard.diverged

    @property
    def skipped_steps(self) -> int:
        return self.guard.skipped_steps

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.G.z_dim, device=self.device)

    def _fake_labels(self, n: int) -> torch.Tensor | None:
        """Labels of ``n`` generated samples (None for an unconditional GAN)."""
        if not self.conditional:
            return None
        return torch.multinomial(self.label_probs, n, replacement=True)

    def _g(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.G(z) if y is None else self.G(z, y)

    def _generate(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        """``n`` training fakes. For a packing D (``discriminator.pack=m``, ``pack_generator=
        per_slot``) G runs once per slot, as PacGAN's code does (its batch norm then sees n/m
        samples per call), and the calls are interleaved so each tuple of m consecutive samples
        takes its i-th sample from the i-th call."""
        z, m = self._noise(n), pack_of(self.D)
        if m == 1 or self.settings.pack_generator == "joint" or n % m:
            return self._g(z, y)
        parts = [self._g(zi, None if y is None else yi)
                 for zi, yi in zip(z.view(n // m, m, -1).unbind(1),
                                   [None] * m if y is None else y.view(n // m, m).unbind(1))]
        return torch.stack(parts, dim=1).flatten(0, 1)

    def _d(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.D(x) if y is None else self.D(x, y)

    def _split_batch(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(images, labels) of a loader batch; labels None for an unconditional GAN."""
        if isinstance(batch, (tuple, list)):
            images, labels = batch
            return images, (labels if self.conditional else None)
        if self.conditional:
            raise RuntimeError("a class-conditional GAN needs (images, labels) batches: call "
                               "datamodule.use_labels() before training")
        return batch, None

    # -- the step -----------------------------------------------------------------------------
    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        g_opt = self.optimizers()[1]  # Lightning's: its steps are the global_step
        d_opt = self.optimizers(use_pl_optimizer=False)[0]  # stepped by step_discriminator
        images, labels = self._split_batch(batch)
        if self._data_diversity is None:
            self._data_diversity = health.diversity(images[: self.batch_size])
        stats = None
        real_labels = (labels.split(self.batch_size) if labels is not None
                       else [None] * math.ceil(len(images) / self.batch_size))
        for real, y_real in zip(images.split(self.batch_size), real_labels):
            stats = self._discriminator_update(real, d_opt, y_real) or stats
            if self.diverged:
                return

        # The generator update: D frozen (no grads, no power iteration), G's own norms (g_norm)
        # evaluated once.
        with self.toggled_optimizer(g_opt), power_iteration_paused(self.D), parametrize.cached():
            y_gen = self._fake_labels(self.g_batch_size)
            d_gen = self._d(self._generate(self.g_batch_size, y_gen), y_gen)
            loss_g = self.loss.g(d_gen)
            g_opt.zero_grad(set_to_none=True)
            if self.guard.allow(loss_g, g_opt, "generator loss", self.gen_step + 1):
                self.manual_backward(loss_g)
            elif self.diverged:
                return
            g_opt.step()  # without gradients (a skipped update) it changes nothing but the count
        for scheduler in self._schedulers():
            scheduler.step()  # once per generator update (lr_decay)
        if stats is None:  # every discriminator update of this step was skipped
            stats = {"loss_d": torch.tensor(float("nan")), "loss_adv": torch.tensor(float("nan")),
                     "penalty": None, "d_real": torch.tensor([float("nan")]),
                     "d_fake": torch.tensor([float("nan")])}
        self._after_step(stats, loss_g, d_opt, g_opt)

    def _after_step(self, stats, loss_g, d_opt, g_opt) -> None:
        step, last, schedule = self.gen_step, self.total_steps, self.schedule
        log_step = schedule.due(schedule.log_every, step, last)
        if log_step and self.guard.has_deferred and self.guard.check_deferred(step):
            return  # diverged
        if self.G_ema is not None and step > self.settings.ema.start:
            ema_lib.update(self.G_ema, self.G, self.settings.ema.decay, first=not self._ema_started)
            self._ema_started = True
        if log_step:
            self._log_scalars(step, stats, loss_g, d_opt, g_opt)
        self._log_diagnostics(step, last, stats)
        if schedule.due(schedule.sample_every, step, last):
            self.log_samples(step)
        if self.evaluation_due(step):
            self.run_evaluation(step)
        elif step == last:
            self.check_health(step)

    def evaluation_due(self, step: int) -> bool:
        """Whether generator step ``step`` ends with an evaluation (StepCheckpoint saves
        ``last.ckpt`` before one)."""
        return self.evaluator is not None and self.schedule.due(self.schedule.eval_every, step,
                                                                self.total_steps)

    def _discriminator_update(self, real: torch.Tensor, d_opt,
                              y_real: torch.Tensor | None = None) -> dict[str, torch.Tensor] | None:
        y_fake = self._fake_labels(real.shape[0])
        with torch.no_grad(), power_iteration_paused(self.G):
            fake = self._generate(real.shape[0], y_fake)
        step = self.gen_step + 1
        with parametrize.cached():  # D's weights (and their power iteration) once per update
            if self._joint:
                labels = None if y_real is None else torch.cat([y_real, y_fake])
                d_real, d_fake = self._d(torch.cat([real, fake]), labels).split(
                    [packed_count(self.D, len(real)), packed_count(self.D, len(fake))])
            else:
                d_real, d_fake = self._d(real, y_real), self._d(fake, y_fake)
            loss_adv = self.settings.fault.apply(self.loss.d(d_real, d_fake), step, self.global_rank)
            loss_d = loss_adv
            penalty = None
            if self.penalty is not None:
                d_fn, p_real, p_fake = penalty_inputs(self.D, real, fake)  # per D input
                if y_real is not None:
                    # D at the real labels, also at WGAN-GP's interpolates between a real and a
                    # fake sample (whose labels differ): the penalty constrains x -> D(x, y) for
                    # the classes of the data (as StudioGAN's conditional penalties do).
                    d_fn = partial(self.D, y=y_real)
                penalty = self.penalty.fn(d_fn, p_real, p_fake, weight=self.penalty_weight,
                                          scale=self.penalty_scale())
                loss_d = loss_d + penalty
            d_opt.zero_grad(set_to_none=True)
            finite = self.guard.allow(loss_d, d_opt, "discriminator loss", step)
            if finite:
                self.manual_backward(loss_d)
        if self.diverged:
            return None
        self.step_discriminator(d_opt)  # skipped update: no gradients, Adam leaves the weights alone
        if not finite:
            return None
        stats = {"loss_d": loss_d, "loss_adv": loss_adv, "penalty": penalty,
                 "d_real": d_real.detach(), "d_fake": d_fake.detach(),
                 "real": real, "fake": fake,  # kept for the diagnostics of this step
                 "y_real": y_real, "y_fake": y_fake}
        if self.gate_signals:  # per-update hooks (OSN's adaptive gates): on device, no host sync
            signals = {"logit_gap": d_real.detach().mean() - d_fake.detach().mean()}
            if "grad_norm" in self.gate_signals:
                signals["grad_norm"] = self.d_grad_norm()
            run_per_update(self.D, signals)
        return stats

    def penalty_scale(self) -> torch.Tensor | float | None:
        """GradScaler's current scale under ``16-mixed`` (None without one): the penalties scale
        D's output by it before taking the input gradient (``spectral_gan.penalties``). Read
        from Lightning's precision plugin, as the tensor on the device (no host sync) once the
        scaler has made it, its initial value before."""
        trainer = self._trainer
        scaler = getattr(trainer.precision_plugin, "scaler", None) if trainer is not None else None
        if scaler is None or not scaler.is_enabled():
            return None
        scale = getattr(scaler, "_scale", None)
        return scale.detach().clone() if scale is not None else scaler.get_scale()

    # -- set-up, evaluation, health -----------------------------------------------------------
    def on_train_start(self) -> None:
        # Which steps log is decided here (log_every, eval.every, events): Lightning writes each
        # step that logged something, in generator steps (the logged ``step`` is the x-axis).
        self.trainer.log_every_n_steps = 1
        restore_rng(self._pending_rng)
        self._pending_rng = None
        self.guard.setup(self, self.optimizers(), self.device)
        if self.joint_d_pass == "auto":
            self._joint = joint_d_pass_on("auto", self.D, self.device.type)
        self._ema_started = ema_lib.has_started(self.G_ema)
        if self.evaluator is not None and not self.evaluator.points:
            self.evaluator.prepare_reference(self.device)  # protocol complete before hparams
            self.run_hparams = {**self.run_hparams, "eval_protocol": self.evaluator.protocol}

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
            # spectral_gan.callbacks.BestCheckpoint (a ModelCheckpoint) from callback_metrics.
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
        """Say plainly whether the samples have collapsed (spectral_gan/health.py): log
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
        if self.health_reasons and self.trainer.is_global_zero:
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

    # -- logging ------------------------------------------------------------------------------
    def d_grad_norm(self) -> torch.Tensor:
        """2-norm of all discriminator gradients of the last update."""
        return grad_norm(self.D.parameters(), self.device)

    def _log_scalars(self, step, stats, loss_g, d_opt, g_opt) -> None:
        metrics = training_scalars(stats, loss_g, d_opt, g_opt, self.d_grad_norm(),
                                   self.penalty.name if self.penalty else None)
        metrics = as_floats({**metrics, **spectral_report(self.D), **learned_scales(self.D)})
        stalled = metrics["grad_norm/d"] < health.STALL_GRAD_NORM
        self._stalled_logs = self._stalled_logs + 1 if stalled else 0
        self.log_dict({"loss_d": metrics["loss/d"], "loss_g": metrics["loss/g"]},
                      prog_bar=True, logger=False)
        hp = {"hp/loss_d": metrics["loss/d"], "hp/loss_g": metrics["loss/g"]}
        if not self._hparams_logged:
            # The HParams view shows the metrics declared here: losses now, evaluation metrics
            # (final and best) as they are logged under hp/ later.
            declared = dict(hp)
            if self.evaluator is not None:
                declared.update({n.replace("metrics/", "hp/"): float("nan")
                                 for n in self.evaluator.metric_names()})
            log_hparams(self.loggers, self.run_hparams, declared)
            self._hparams_logged = True
        self.log_scalars({**metrics, **hp}, step)

    def _log_diagnostics(self, step: int, last: int, stats: dict[str, Any]) -> None:
        """The per-layer and Lipschitz diagnostics, each at its cadence (``monitor.*``; what each
        tag means: ``norms.monitor``, ``norms.lipschitz``)."""
        schedule = self.schedule
        values: dict[str, Any] = {}
        if schedule.due(schedule.svd_every, step, last):
            values.update(condition_numbers(self.D))
        real, fake = stats.get("real"), stats.get("fake")  # absent when every D update was skipped
        y_real, y_fake = stats.get("y_real"), stats.get("y_fake")
        if schedule.due(schedule.lipschitz_every, step, last) and real is not None:
            model = self.D
            if y_real is not None:
                # lipschitz_report evaluates D on its first n real, n fake and n interpolated
                # samples, in that order: each at its own label (interpolates at the real one).
                n = sample_count(self.D, self.settings.monitor.lipschitz_samples,
                                 min(len(real), len(fake)))
                model = bind_labels(self.D, torch.cat([y_real[:n], y_fake[:n], y_real[:n]]))
            values.update(lipschitz_report(model, real, fake, self._constants,
                                           self.settings.monitor.lipschitz_samples))
        if schedule.due(schedule.layer_stats_every, step, last):
            values.update(layer_grad_norms(self.D, "grad_norm/d"))
            values.update(layer_grad_norms(self.G, "grad_norm/g"))
            if real is not None:
                # Hidden layers come before the projection, so any labels of the right length
                # give the same drift; the real ones serve both batches (equal sizes).
                model = self.D if y_real is None else bind_labels(self.D, y_real)
                values.update(activation_drift(model, [real, fake]))
        if values:
            self.log_scalars(values, step)

    def log_scalars(self, metrics: dict[str, Any], step: int) -> None:
        """Scalars at generator step ``step`` (the loggers' x-axis), written to every logger
        directly, and their last values to ``trainer.callback_metrics``, which
        ModelCheckpoint(monitor=...) and EarlyStopping(monitor=...) read.

        Not through ``self.log``: Lightning counts optimizer steps, not generator steps, and
        hands a value logged at one step to the loggers again at every later one. So the unit
        of the x-axis is the GAN's own, whichever step a scalar belongs to (a training step's,
        an event the deferred divergence check reports for an earlier step, ``check_health``
        after fit)."""
        values = as_floats(metrics)
        run_logging.log_scalars(self.loggers, values, step)
        try:
            monitors = self.trainer.callback_metrics
        except RuntimeError:  # not attached to a Trainer
            return
        monitors.update({k: torch.tensor(v) for k, v in values.items()})  # on the CPU: no syncs

    # -- samples ------------------------------------------------------------------------------
    @property
    def sampler(self) -> nn.Module:
        """The EMA generator once it has started averaging, else the generator."""
        return self.G_ema.module if ema_lib.has_started(self.G_ema) else self.G

    @torch.no_grad()
    def samples(self, z: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """Samples of ``sampler`` (eval mode) for noise ``z`` and, for a class-conditional
        generator, labels ``y``; no arguments: the fixed grid (one row per class)."""
        if z is None:
            z, y = self.fixed_z, self.fixed_y
        net = self.sampler
        was_training = net.training
        net.eval()
        try:
            return net(z) if not self.conditional else net(z, y)
        finally:
            net.train(was_training)

    def log_samples(self, step: int) -> None:
        out = self.samples()
        if out.dim() == 4:
            picture = image_grid(out, nrow=GRID_COLUMNS if self.conditional else 8)
        else:
            if len(out) < 512:  # a cloud needs more points; fixed noise, not the training stream
                z = torch.randn(2048, self.G.z_dim, generator=torch.Generator().manual_seed(self.seed))
                out = self.samples(z.to(self.device))
            picture = scatter_image(out, self.reference_points)
        log_picture(self.loggers, picture, step, self.paths.samples if self.trainer.is_global_zero else None)
