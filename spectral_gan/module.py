"""The GAN training step as a LightningModule (manual optimization).

One ``training_step`` is one generator update, preceded by ``n_dis`` discriminator updates; the
loader batch holds the ``n_dis`` real batches. Lightning's ``global_step`` counts optimizer steps,
so it advances by ``n_dis + 1`` per training step: ``gen_step`` is what this framework calls a
step (``steps=``, logging, checkpoint names).

Power-iteration cadence: each discriminator update evaluates D's normalized weights once inside
``parametrize.cached()`` (one iteration, however many D forwards), and the generator update runs
with the iteration paused.
"""
from __future__ import annotations

import logging
import os
import random
from functools import partial
from typing import Any, Callable, Iterable

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn
from torch.nn.utils import parametrize
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.utils import save_image

from spectral_gan import health
from spectral_gan.errors import ConfigError
from spectral_gan.losses import AdversarialLoss
from spectral_gan.norms import (gate_signals_needed, mixes_batch, power_iteration_paused,
                                power_iterations, update_gates)
from spectral_gan.norms.monitor import condition_numbers, spectral_report
from spectral_gan.penalties import get_penalty
from spectral_gan.speed import check_joint_d_pass
from spectral_gan.visualize import image_grid, scatter_image

log = logging.getLogger(__name__)

DIVERGENCE_ACTIONS = ("stop", "skip")
DIVERGENCE_CHECKS = ("deferred", "every_update")
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class GAN(pl.LightningModule):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss,
        g_optimizer: OptimizerFactory = partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),
        d_optimizer: OptimizerFactory = partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),
        n_dis: int = 1,
        batch_size: int = 64,
        ema_decay: float = 0.0,
        ema_start: int = 0,
        log_every: int = 50,
        sample_every: int = 500,
        num_samples: int = 64,
        sample_dir: str | None = None,
        reference_points: torch.Tensor | None = None,
        hparams: dict[str, Any] | None = None,
        seed: int = 0,
        penalty: str = "none",
        penalty_weight: float | None = None,
        svd_every: int = 0,
        evaluator: Any = None,
        eval_every: int = 0,
        best_checkpoint: str | None = None,
        divergence_action: str = "stop",
        max_skips: int = 10,
        divergence_check: str = "deferred",
        diverged_checkpoint: str | None = None,
        nan_at_step: int | None = None,
        nan_rank: int | None = None,
        joint_d_pass: str | bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.G, self.D, self.loss = generator, discriminator, loss
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.n_dis, self.batch_size = n_dis, batch_size
        self.log_every, self.sample_every = log_every, sample_every
        self.sample_dir = sample_dir
        self.reference_points = reference_points
        self.ema_start, self.ema_decay = ema_start, ema_decay
        self.G_ema = (AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(ema_decay),
                                    use_buffers=True) if ema_decay > 0 else None)
        if self.G_ema is not None:  # averaged, never trained: keep it out of autograd and DDP
            self.G_ema.requires_grad_(False)
        z = torch.randn(num_samples, generator.z_dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("fixed_z", z)
        self.penalty = get_penalty(penalty)
        self.penalty_weight = (penalty_weight if penalty_weight is not None
                               else self.penalty.default_weight if self.penalty else 0.0)
        self.gate_signals = gate_signals_needed(discriminator)
        self.svd_every = svd_every
        self.evaluator, self.eval_every, self.best_checkpoint = evaluator, eval_every, best_checkpoint
        self.best_metric = float("inf")
        if divergence_action not in DIVERGENCE_ACTIONS:
            raise ConfigError(f"divergence.action must be stop or skip, got {divergence_action!r}")
        self.divergence_action, self.max_skips = divergence_action, max_skips
        if divergence_check not in DIVERGENCE_CHECKS:
            raise ConfigError(f"divergence.check must be deferred or every_update, got "
                              f"{divergence_check!r}")
        self.divergence_check = divergence_check
        self._deferred: set[int] = set()  # ids of optimizers that skip non-finite steps on device
        self.diverged_checkpoint, self.nan_at_step = diverged_checkpoint, nan_at_step
        self.nan_rank = nan_rank
        check_joint_d_pass(joint_d_pass)
        if joint_d_pass is True and mixes_batch(discriminator):
            raise ConfigError(
                "speed.joint_d_pass=true runs real and fake images through D as one batch, but this "
                "discriminator normalizes with batch statistics (BatchNorm or MSN), so real and "
                "fake would share them and D would compute another function; use "
                "speed.joint_d_pass=auto or false")
        self.joint_d_pass = joint_d_pass
        self._joint = joint_d_pass is True  # auto: decided in on_train_start, on the device
        self.skipped_steps = 0
        self.diverged: dict[str, Any] | None = None
        self._pending_rng: dict[str, Any] | None = None
        self.seed = seed
        self.run_hparams = hparams or {}
        if hparams:
            self.save_hyperparameters(hparams, logger=False)
        self._hparams_logged = False
        self._data_diversity: float | None = None  # of the first real batch (health checks)
        self._stalled_logs = 0  # consecutive log steps with D's gradient vanished
        self.health_reasons: list[str] = []

    # -- optimizers -------------------------------------------------------------------------
    def configure_optimizers(self):
        return [self.d_optimizer(self.D.parameters()), self.g_optimizer(self.G.parameters())]

    @property
    def gen_step(self) -> int:
        """Generator updates completed (Lightning's global_step counts all optimizer steps)."""
        return self.trainer.global_step // (self.n_dis + 1)

    @property
    def total_steps(self) -> int:
        return self.trainer.max_steps // (self.n_dis + 1)

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.G.z_dim, device=self.device)

    # -- the step -----------------------------------------------------------------------------
    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        d_opt, g_opt = self.optimizers()
        if self._data_diversity is None:
            self._data_diversity = health.diversity(batch[: self.batch_size])
        stats = None
        for real in batch.split(self.batch_size):
            stats = self._discriminator_update(real, d_opt) or stats
            if self.diverged:
                return

        # The generator update: D frozen (no grads, no power iteration), G's own norms (g_norm)
        # evaluated once.
        with self.toggled_optimizer(g_opt), power_iteration_paused(self.D), parametrize.cached():
            d_gen = self.D(self.G(self._noise(self.batch_size)))
            loss_g = self.loss.g(d_gen)
            g_opt.zero_grad(set_to_none=True)
            if self._guard(loss_g, g_opt, "generator loss"):
                self.manual_backward(loss_g)
            elif self.diverged:
                return
            g_opt.step()  # without gradients (a skipped update) it changes nothing but the count
        if stats is None:  # every discriminator update of this step was skipped
            stats = {"loss_d": torch.tensor(float("nan")), "loss_adv": torch.tensor(float("nan")),
                     "penalty": None, "d_real": torch.tensor([float("nan")]),
                     "d_fake": torch.tensor([float("nan")])}

        step = self.gen_step
        log_step = step % self.log_every == 0 or step == self.total_steps
        if log_step and self._deferred and self._check_deferred():
            return  # diverged
        if self.G_ema is not None and step > self.ema_start:
            self._update_ema()
        self.log("gen_step", float(step), logger=False)  # for checkpoint file names
        if log_step:
            self._log_scalars(step, stats, loss_g, d_opt, g_opt)
        if self.svd_every and step % self.svd_every == 0:
            self._log(condition_numbers(self.D), step)
        if step % self.sample_every == 0 or step == self.total_steps:
            self.log_samples(step)
        if self.evaluator is not None and ((self.eval_every and step % self.eval_every == 0)
                                           or step == self.total_steps):
            self.run_evaluation(step)
        elif step == self.total_steps:
            self.check_health(step)

    # -- evaluation -----------------------------------------------------------------------------
    def on_train_start(self) -> None:
        self._restore_rng()
        self._setup_divergence_check()
        if self.joint_d_pass == "auto":
            # One D pass on cat(real, fake) computes the same losses and gradients unless D mixes
            # the batch; it measured slower on the CPU (docs/benchmarks.md), so auto = GPU only.
            self._joint = self.device.type == "cuda" and not mixes_batch(self.D)
        self._ema_started = self.G_ema is not None and bool(self.G_ema.n_averaged > 0)
        if self.evaluator is not None and not self.evaluator.points:
            self.evaluator.prepare_reference(self.device)  # protocol complete before hparams
            self.run_hparams = {**self.run_hparams, "eval_protocol": self.evaluator.protocol}

    def run_evaluation(self, step: int) -> dict[str, float]:
        # Fixed evaluation noise from its own generator: the training RNG stream stays untouched.
        gen = torch.Generator().manual_seed(self.seed + 1)
        metrics = self.evaluator.evaluate(
            lambda n: self.samples(torch.randn(n, self.G.z_dim, generator=gen).to(self.device)),
            self.device)
        primary = self.evaluator.primary
        if primary in metrics:
            value = metrics[primary]
            if value < self.best_metric:
                self.best_metric = value
                if self.best_checkpoint:
                    self.trainer.save_checkpoint(self.best_checkpoint)
            metrics[primary.replace("metrics/", "metrics/best_")] = self.best_metric
        self.last_metrics = metrics
        self._log({**metrics, **{k.replace("metrics/", "hp/"): v for k, v in metrics.items()}}, step)
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
        self._log(values, step)
        if self.health_reasons and self.trainer.is_global_zero:
            log.warning("generator step %d: the samples have collapsed: %s", step,
                        "; ".join(self.health_reasons))
        return self.health_reasons

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["best_metric"] = self.best_metric
        checkpoint["diverged"] = self.diverged
        checkpoint["skipped_steps"] = self.skipped_steps
        # RNG states, so that a resumed run draws the noise the uninterrupted one would have.
        checkpoint["rng"] = {"torch": torch.get_rng_state(), "python": random.getstate()[1],
                             "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        # What spectral-gan-sample / spectral-gan-eval need to rebuild the networks.
        checkpoint["spectral_gan_config"] = getattr(self, "run_config", None)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_metric = checkpoint.get("best_metric", float("inf"))
        self.skipped_steps = checkpoint.get("skipped_steps", 0)
        self._pending_rng = checkpoint.get("rng")  # applied in on_train_start, after set-up

    def _restore_rng(self) -> None:
        rng, self._pending_rng = self._pending_rng, None
        if not rng:
            return
        torch.set_rng_state(rng["torch"])
        state = random.getstate()
        random.setstate((state[0], tuple(rng["python"]), state[2]))
        if rng.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def _discriminator_update(self, real: torch.Tensor, d_opt) -> dict[str, torch.Tensor]:
        with torch.no_grad(), power_iteration_paused(self.G):
            fake = self.G(self._noise(real.shape[0]))
        with parametrize.cached():  # D's weights (and their power iteration) once per update
            if self._joint:
                d_real, d_fake = self.D(torch.cat([real, fake])).split([len(real), len(fake)])
            else:
                d_real, d_fake = self.D(real), self.D(fake)
            loss_adv = self.loss.d(d_real, d_fake)
            if (self.nan_at_step is not None and self.gen_step + 1 == self.nan_at_step
                    and self.nan_rank in (None, self.global_rank)):
                loss_adv = loss_adv * float("nan")  # fault injection (fault.nan_at_step)
            loss_d = loss_adv
            penalty = None
            if self.penalty is not None:
                penalty = self.penalty.fn(self.D, real, fake, weight=self.penalty_weight)
                loss_d = loss_d + penalty
            d_opt.zero_grad(set_to_none=True)
            finite = self._guard(loss_d, d_opt, "discriminator loss")
            if finite:
                self.manual_backward(loss_d)
        if self.diverged:
            return None
        d_opt.step()  # a skipped update has no gradients: Adam leaves the weights alone
        if not finite:
            return None
        stats = {"loss_d": loss_d, "loss_adv": loss_adv, "penalty": penalty,
                 "d_real": d_real.detach(), "d_fake": d_fake.detach()}
        if self.gate_signals:  # OSN adaptive gates: on-device update, no host sync
            signals = {"logit_gap": d_real.detach().mean() - d_fake.detach().mean()}
            if "grad_norm" in self.gate_signals:
                signals["grad_norm"] = self.d_grad_norm()
            update_gates(self.D, signals)
        return stats

    # -- EMA ----------------------------------------------------------------------------------
    @torch.no_grad()
    def _update_ema(self) -> None:
        """EMA of G's parameters and float buffers, as AveragedModel with get_ema_multi_avg_fn.

        Done here rather than by ``AveragedModel.update_parameters``, which reads ``n_averaged``
        on the host (two GPU syncs per step); the first update copies, as it does.
        """
        ema, decay = self.G_ema, self.ema_decay
        pairs = [(a, b) for a, b in zip([*ema.module.parameters(), *ema.module.buffers()],
                                        [*self.G.parameters(), *self.G.buffers()])]
        floats = [(a, b.detach()) for a, b in pairs if a.is_floating_point()]
        others = [(a, b) for a, b in pairs if not a.is_floating_point()]
        if not self._ema_started:
            torch._foreach_copy_([a for a, _ in floats], [b for _, b in floats])
            self._ema_started = True
        elif floats:
            torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1.0 - decay)
        for a, b in others:  # counters (BatchNorm's num_batches_tracked): the current value
            a.copy_(b)
        ema.n_averaged += 1
        # g_norm: an average of unit vectors is not one; take G's current u, v instead.
        for ema_p, p in zip(power_iterations(ema.module), power_iterations(self.G)):
            ema_p.u.copy_(p.u)
            ema_p.v.copy_(p.v)

    # -- divergence guard -------------------------------------------------------------------------
    def _setup_divergence_check(self) -> None:
        """Decide, per optimizer, whether non-finite updates are caught on the device.

        ``divergence.check=deferred`` needs an optimizer that can skip a step on the device
        (``_step_supports_amp_scaling``: fused Adam) and no GradScaler (``16-mixed`` sets the same
        flag itself). Otherwise the loss is checked on the host before each update.
        """
        self._deferred = set()
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if self.divergence_check != "deferred" or scaler is not None:
            return
        for opt in self.optimizers():
            inner = getattr(opt, "optimizer", opt)
            if getattr(inner, "_step_supports_amp_scaling", False):
                self._deferred.add(id(inner))
        self._bad_count = torch.zeros((), device=self.device)
        self._first_bad = torch.full((2,), -1, dtype=torch.long, device=self.device)  # step, what

    def _guard(self, loss: torch.Tensor, opt, what: str) -> bool:
        """Whether to backpropagate ``loss`` and step ``opt`` (False: skip or stop)."""
        inner = getattr(opt, "optimizer", opt)
        if id(inner) not in self._deferred:
            return self._finite(loss, what)
        # Deferred: no host sync. A non-finite loss sets the optimizer's found_inf, so its step
        # leaves weights and moments untouched on the device; _check_deferred acts at log steps.
        bad = self._any_rank((~torch.isfinite(loss.detach())).float())
        inner.found_inf = bad
        self._bad_count += bad
        first = (self._first_bad[0] < 0) & (bad > 0)
        self._first_bad[0].masked_fill_(first, self.gen_step + 1)
        self._first_bad[1].masked_fill_(first, 0 if what.startswith("discriminator") else 1)
        return True

    @staticmethod
    def _any_rank(flag: torch.Tensor) -> torch.Tensor:
        """Max of a flag over DDP ranks (a device collective, no host sync): gradients are
        averaged over ranks, so one rank's non-finite loss spoils every rank's update."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return flag

    def _check_deferred(self) -> bool:
        """At a log step: act on non-finite updates since the last check. True if diverged."""
        count = int(self._bad_count.item())  # the one host sync, every log_every steps
        if not count:
            return False
        first_step, which = (int(v) for v in self._first_bad.tolist())
        what = ("discriminator", "generator")[which]
        self._bad_count.zero_()
        self._first_bad.fill_(-1)
        if self.divergence_action == "skip" and self.skipped_steps + count <= self.max_skips:
            self.skipped_steps += count
            self._log({"events/skipped_step": 1.0, "events/skipped_total": self.skipped_steps},
                      first_step)
            return False
        self._declare_diverged(first_step, f"non-finite {what} loss ({count} update(s) skipped "
                                            f"on the device before the check at step {self.gen_step})")
        return True

    def _finite(self, loss: torch.Tensor, what: str) -> bool:
        """Check a loss before it touches the weights (one host sync per update: a scalar).

        Non-finite: skip the update (``divergence.action=skip``, at most ``max_skips`` times) or
        stop: save ``diverged.ckpt`` with the last finite weights, log the event, end training.
        """
        if not bool(self._any_rank((~torch.isfinite(loss.detach())).float())):
            return True
        step = self.gen_step + 1
        if self.divergence_action == "skip" and self.skipped_steps < self.max_skips:
            self.skipped_steps += 1
            self._log({"events/skipped_step": 1.0, "events/skipped_total": self.skipped_steps}, step)
            return False
        self._declare_diverged(step, f"non-finite {what} ({float(loss)})")
        return False

    def _declare_diverged(self, step: int, reason: str) -> None:
        """Record the event, save ``diverged.ckpt`` (finite weights: the bad update was never
        applied) and end training."""
        self.diverged = {"step": step, "reason": reason, "skipped_before": self.skipped_steps}
        self._log({"events/diverged": 1.0}, step)
        if self.diverged_checkpoint:
            self.trainer.save_checkpoint(self.diverged_checkpoint)
        self.trainer.should_stop = True

    def d_grad_norm(self) -> torch.Tensor:
        """2-norm of all discriminator gradients of the last update."""
        grads = [p.grad for p in self.D.parameters() if p.grad is not None]
        if not grads:
            return torch.zeros((), device=self.device)
        return torch.nn.utils.get_total_norm(grads)

    # -- logging ------------------------------------------------------------------------------
    def _log_scalars(self, step, stats, loss_g, d_opt, g_opt) -> None:
        metrics = {
            "loss/d": stats["loss_d"], "loss/g": loss_g,
            "d/real": stats["d_real"].mean(), "d/fake": stats["d_fake"].mean(),
            "lr/d": d_opt.param_groups[0]["lr"], "lr/g": g_opt.param_groups[0]["lr"],
            "grad_norm/d": self.d_grad_norm(),
        }
        if stats["penalty"] is not None:
            metrics["loss/d_adversarial"] = stats["loss_adv"]
            metrics[f"loss/penalty_{self.penalty.name}"] = stats["penalty"]
        metrics.update(spectral_report(self.D))
        metrics = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in metrics.items()}
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
            for logger in self.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.log_hyperparams(self.run_hparams, metrics=declared)
                else:
                    logger.log_hyperparams(self.run_hparams)
            self._hparams_logged = True
        self._log({**metrics, **hp}, step)

    def _log(self, metrics: dict[str, Any], step: int) -> None:
        metrics = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in metrics.items()}
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)

    @property
    def sampler(self) -> nn.Module:
        """The EMA generator once it has started averaging, else the generator."""
        if self.G_ema is not None and self.G_ema.n_averaged.item() > 0:
            return self.G_ema.module
        return self.G

    @torch.no_grad()
    def samples(self, z: torch.Tensor | None = None) -> torch.Tensor:
        net = self.sampler
        was_training = net.training
        net.eval()
        try:
            return net(self.fixed_z if z is None else z)
        finally:
            net.train(was_training)

    def log_samples(self, step: int) -> None:
        out = self.samples()
        if out.dim() == 4:
            picture = image_grid(out)
        else:
            if len(out) < 512:  # a cloud needs more points; fixed noise, not the training stream
                z = torch.randn(2048, self.G.z_dim, generator=torch.Generator().manual_seed(self.seed))
                out = self.samples(z.to(self.device))
            picture = scatter_image(out, self.reference_points)
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", picture, step)
        if self.sample_dir and self.trainer.is_global_zero:
            os.makedirs(self.sample_dir, exist_ok=True)
            save_image(picture, os.path.join(self.sample_dir, f"step_{step:06d}.png"))
