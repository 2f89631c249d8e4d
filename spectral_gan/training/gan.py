"""The GAN training step as a LightningModule (manual optimization).

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

Relativistic losses (``loss=rpgan``): the generator update scores the step's last real batch
too (no gradient), paired by index with the generated one. LeCam (``lecam_weight > 0``) adds its
term to D's loss after updating its anchors with the batch (``spectral_gan/lecam.py``).

Settings come grouped (``settings.GANSettings``). In their own files: what G and D are fed,
augmentation included (``gan_inputs.py``), the divergence guard (``divergence.py``), the EMA
(``ema.py``), the RNG state of checkpoints (``rng_state.py``), the
optimizers' decay (``optimizers.py``), and the module's scalars (``gan_logging.py``), evaluations
and checkpoint hooks (``gan_evaluation.py``) and samples (``gan_sampling.py``), the compiled
step of ``speed.capture_step`` (``gan_captured.py``); the diagnostics
and sample grids of each step are callbacks (``callbacks/diagnostics.py``, ``sample_grid.py``).
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

from spectral_gan.training import ema as ema_lib
from spectral_gan.training import health
from spectral_gan.training.callbacks.sample_grid import fixed_grid
from spectral_gan.training.divergence import DivergenceGuard
from spectral_gan.training.optimizers import amp_scale, with_lr_decay
from spectral_gan.training.gan_sampling import Sampling
from spectral_gan.training.gan_captured import CapturedStep
from spectral_gan.training.gan_evaluation import EvaluationHooks
from spectral_gan.training.gan_inputs import GANInputs, real_and_fake_logits
from spectral_gan.training.gan_logging import ScalarLogging
from spectral_gan.errors import ConfigError
from spectral_gan.lecam import LeCamAnchors, lecam_penalty
from spectral_gan.losses import AdversarialLoss
from spectral_gan.models.pack import pack_of
from spectral_gan.metrics.registry import worst_value
from spectral_gan.norms import per_update_signals, power_iteration_paused, run_per_update
from spectral_gan.training.rng_state import restore_rng
from spectral_gan.training.settings import GANSettings, RunPaths
from spectral_gan.training.speed import joint_d_pass_on

log = logging.getLogger(__name__)


def _no_closure() -> None:
    return None


OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
DEFAULT_ADAM = partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))


class GAN(GANInputs, EvaluationHooks, ScalarLogging, Sampling, CapturedStep, pl.LightningModule):
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
        if loss.relativistic and self.g_batch_size != self.batch_size:
            raise ConfigError(f"loss={loss.name} pairs each generated sample with a real one, so "
                              f"g_batch_size ({self.g_batch_size}) must equal batch_size "
                              f"({self.batch_size}): set g_batch_size=null")
        self.augment = settings.augment  # DiffAugment's policy names; () when off
        if self.augment and pack_of(discriminator) > 1:
            raise ConfigError("augment=diffaugment transforms single images, and no image "
                              "discriminator packs samples: use discriminator.pack=1")
        lecam = settings.lecam
        self.lecam = LeCamAnchors(lecam.decay, lecam.start) if lecam.weight > 0 else None
        self.reference_points = reference_points
        self.G_ema = ema_lib.averaged_copy(generator, settings.ema)
        self.num_classes = (getattr(generator, "num_classes", None)
                            if getattr(generator, "conditional", False) else None)
        self.conditional = self.num_classes is not None
        probs, z, fixed_y = fixed_grid(generator, self.num_classes, label_probs,
                                       self.schedule.num_samples, settings.seed)
        if probs is not None:  # not checkpointed: rebuilt from the data and fake_labels on start
            self.register_buffer("label_probs", probs, persistent=False)
        self.register_buffer("fixed_z", z)
        self.register_buffer("fixed_y", fixed_y)  # None (no buffer) when unconditional
        self.penalty = settings.penalty.penalty
        self.penalty_weight = settings.penalty.effective_weight
        self.gate_signals = per_update_signals(discriminator)
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
        self._collapse_warned = False  # the collapse warning is printed once a run

    # -- optimizers and step counts -----------------------------------------------------------

    @property
    def joint_d_pass_active(self) -> bool:
        """Whether D scores real and fake in one pass now (``speed.joint_d_pass`` resolved)."""
        return self._joint

    def configure_optimizers(self):
        d_opt, g_opt = self.d_optimizer(self.D.parameters()), self.g_optimizer(self.G.parameters())
        return with_lr_decay(d_opt, g_opt, self.settings, max(self.total_steps, 1))

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

    # -- the step -----------------------------------------------------------------------------
    def training_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, Any] | None:
        g_opt = self.optimizers()[1]  # Lightning's: its steps are the global_step
        d_opt = self.optimizers(use_pl_optimizer=False)[0]  # stepped by step_discriminator
        images, labels = self._split_batch(batch)
        if self._data_diversity is None:
            self._data_diversity = health.diversity(images[: self.batch_size])
        stats = None
        real_labels = (labels.split(self.batch_size) if labels is not None
                       else [None] * math.ceil(len(images) / self.batch_size))
        # speed.capture_step: both updates through compiled functions (gan_captured.py)
        d_update = self._captured_d if self._captured else self._discriminator_update
        g_update = self._captured_g if self._captured else self._generator_update
        for real, y_real in zip(images.split(self.batch_size), real_labels):
            stats = d_update(real, d_opt, y_real) or stats
            if self.diverged:
                return
        loss_g = g_update(g_opt, real, y_real)
        if loss_g is None:  # diverged
            return
        for scheduler in self._schedulers():
            scheduler.step()  # once per generator update (lr_decay)
        if stats is None:  # every discriminator update of this step was skipped
            stats = {"loss_d": torch.tensor(float("nan")), "loss_adv": torch.tensor(float("nan")),
                     "penalty": None, "lecam": None, "d_real": torch.tensor([float("nan")]),
                     "d_fake": torch.tensor([float("nan")])}
        if self._after_step(stats, loss_g, d_opt, g_opt):
            # The step's batches and statistics, for the callbacks (diagnostics, sample grids).
            return {**stats, "loss_g": loss_g.detach()}
        return None

    def _generator_update(self, g_opt, real, y_real) -> torch.Tensor | None:
        """D frozen (no grads, no power iteration), G's own norms (g_norm) evaluated once; a
        relativistic loss pairs the step's last real batch. G's loss; None when diverged."""
        with self.toggled_optimizer(g_opt), power_iteration_paused(self.D), parametrize.cached():
            y_gen = self._fake_labels(self.g_batch_size)
            d_gen = self._d(self._generate(self.g_batch_size, y_gen), y_gen)
            if self.loss.relativistic:  # D(x) of the step's last real batch, a constant for G
                with torch.no_grad():
                    d_paired = self._d(real, y_real)
                loss_g = self.loss.g(d_gen, d_paired)
            else:
                loss_g = self.loss.g(d_gen)
            g_opt.zero_grad(set_to_none=True)
            if self.guard.allow(loss_g, g_opt, "generator loss", self.gen_step + 1):
                self.manual_backward(loss_g)
            elif self.diverged:
                return None
            g_opt.step()  # without gradients (a skipped update) it changes nothing but the count
        return loss_g

    def _after_step(self, stats, loss_g, d_opt, g_opt) -> bool:
        """The EMA update, the scalars, the evaluation; False when the run diverged."""
        step, last, schedule = self.gen_step, self.total_steps, self.schedule
        log_step = schedule.due(schedule.log_every, step, last)
        if log_step and self.guard.has_deferred and self.guard.check_deferred(step):
            return False
        ema_due = self.G_ema is not None and step > self.settings.ema.start
        if ema_due and not (self._captured and self._ema_started):  # else: in the captured G update
            ema_lib.update(self.G_ema, self.G, self.settings.ema.decay, first=not self._ema_started)
            self._ema_started = True
        if log_step:
            self._log_scalars(step, stats, loss_g, d_opt, g_opt)
        if self.evaluation_due(step):
            self.run_evaluation(step)
        elif step == last:
            self.check_health(step)
        return True

    def _discriminator_update(self, real: torch.Tensor, d_opt,
                              y_real: torch.Tensor | None = None) -> dict[str, torch.Tensor] | None:
        y_fake = self._fake_labels(real.shape[0])
        with torch.no_grad(), power_iteration_paused(self.G):
            fake = self._generate(real.shape[0], y_fake)
        step = self.gen_step + 1
        with parametrize.cached():  # D's weights (and their power iteration) once per update
            d_real, d_fake = real_and_fake_logits(self._d, self.D, real, fake, y_real, y_fake,
                                                  self._joint)
            loss_adv = self.settings.fault.apply(self.loss.d(d_real, d_fake), step, self.global_rank)
            loss_d = loss_adv
            penalty = lecam = None
            if self.penalty is not None:
                penalty = self.penalty.fn(*self._penalty_d(real, fake, y_real),
                                          weight=self.penalty_weight, scale=amp_scale(self.trainer))
                loss_d = loss_d + penalty
            if self.lecam is not None:  # anchors first, then the term (the authors' order)
                self.lecam.update(d_real, d_fake, self.gen_step)
                lecam = self.settings.lecam.weight * lecam_penalty(
                    d_real, d_fake, self.lecam.real, self.lecam.fake, self.settings.lecam.one_sided)
                loss_d = loss_d + lecam
            d_opt.zero_grad(set_to_none=True)
            finite = self.guard.allow(loss_d, d_opt, "discriminator loss", step)
            if finite:
                self.manual_backward(loss_d)
        if self.diverged:
            return None
        self.step_discriminator(d_opt)  # skipped update: no gradients, Adam leaves the weights alone
        if not finite:
            return None
        stats = {"loss_d": loss_d, "loss_adv": loss_adv, "penalty": penalty, "lecam": lecam,
                 "d_real": d_real.detach(), "d_fake": d_fake.detach(),
                 "real": real, "fake": fake,  # kept for the diagnostics of this step
                 "y_real": y_real, "y_fake": y_fake}
        if self.gate_signals:  # per-update hooks (OSN's adaptive gates): on device, no host sync
            signals = {"logit_gap": d_real.detach().mean() - d_fake.detach().mean()}
            if "grad_norm" in self.gate_signals:
                signals["grad_norm"] = self.d_grad_norm()
            run_per_update(self.D, signals)
        return stats

    # -- set-up -------------------------------------------------------------------------------
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
        self._decide_capture()  # speed.capture_step
        if self.evaluator is not None and not self.evaluator.points:
            self.evaluator.prepare_reference(self.device)  # protocol complete before hparams
            self.run_hparams = {**self.run_hparams, "eval_protocol": self.evaluator.protocol}
