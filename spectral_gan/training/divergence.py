"""The divergence guard: what happens when a loss stops being finite.

A non-finite update is skipped (``divergence.action=skip``, at most ``max_skips`` times) or ends
training (``stop``): ``diverged.ckpt`` is saved with the last finite weights (the bad update is
never applied), ``events/diverged`` is logged and the trainer stops. The weights are checked
before saving: an update whose loss was finite can still overflow them (and the next loss is then
the first non-finite one); such weights are not saved as ``diverged.ckpt``, and the reason says
that the newest finite state is the run's last checkpoint. (Keeping a copy of the last finite
weights would cost a copy of the model per step.)

Two ways to check (``divergence.check``):
- ``deferred``: no host sync per update. The optimizer's ``found_inf`` is set on the device, so
  an optimizer that can skip a step there (fused Adam: ``_step_supports_amp_scaling``) leaves
  weights and moments untouched; the guard acts at the next log step. Needs no GradScaler
  (``16-mixed`` uses that flag itself).
- ``every_update``: the loss is checked on the host before each update (exact stop step); also
  used for optimizers that cannot skip on the device.
Under DDP the flag is the max over ranks: gradients are averaged over ranks, so one rank's
non-finite loss spoils every rank's update.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from spectral_gan.errors import ConfigError

_log = logging.getLogger(__name__)

ACTIONS = ("stop", "skip")
CHECKS = ("deferred", "every_update")


@dataclass(frozen=True)
class DivergenceSettings:
    action: str = "stop"
    max_skips: int = 10
    check: str = "deferred"

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ConfigError(f"divergence.action must be {' or '.join(ACTIONS)}, got {self.action!r}")
        if self.check not in CHECKS:
            raise ConfigError(f"divergence.check must be {' or '.join(CHECKS)}, got {self.check!r}")
        if int(self.max_skips) < 0:
            raise ConfigError(f"divergence.max_skips must be >= 0, got {self.max_skips}")


@dataclass(frozen=True)
class FaultInjection:
    """For tests and demos: the discriminator loss becomes NaN at generator step ``nan_at_step``
    (on DDP rank ``nan_rank`` only, or on every rank when it is None)."""

    nan_at_step: int | None = None
    nan_rank: int | None = None

    def apply(self, loss: torch.Tensor, step: int, rank: int) -> torch.Tensor:
        if self.nan_at_step is not None and step == self.nan_at_step and self.nan_rank in (None, rank):
            return loss * float("nan")
        return loss


class Host(Protocol):
    """What the guard needs from the training loop (the LightningModule provides it)."""

    trainer: Any

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def log_scalars(self, metrics: dict[str, Any], step: int) -> None: ...


def any_rank(flag: torch.Tensor) -> torch.Tensor:
    """Max of a flag over DDP ranks (a device collective, no host sync)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return flag


class DivergenceGuard:
    def __init__(self, settings: DivergenceSettings, checkpoint: str | None = None) -> None:
        self.settings, self.checkpoint = settings, checkpoint
        self.skipped_steps = 0
        self.diverged: dict[str, Any] | None = None
        self._deferred: set[int] = set()  # ids of optimizers that skip non-finite steps on device
        self._host: Host | None = None

    def setup(self, host: Host, optimizers: list, device: torch.device) -> None:
        """Decide, per optimizer, whether non-finite updates are caught on the device."""
        self._host, self._deferred = host, set()
        scaler = getattr(host.trainer.precision_plugin, "scaler", None)
        if self.settings.check != "deferred" or scaler is not None:
            return
        for opt in optimizers:
            inner = getattr(opt, "optimizer", opt)
            if getattr(inner, "_step_supports_amp_scaling", False):
                self._deferred.add(id(inner))
        self._bad_count = torch.zeros((), device=device)
        self._first_bad = torch.full((2,), -1, dtype=torch.long, device=device)  # step, which

    @property
    def has_deferred(self) -> bool:
        return bool(self._deferred)

    def allow(self, loss: torch.Tensor, opt, what: str, step: int) -> bool:
        """Whether to backpropagate ``loss`` and step ``opt`` at generator step ``step`` (False:
        skipped or stopped; see ``diverged``)."""
        inner = getattr(opt, "optimizer", opt)
        if id(inner) not in self._deferred:
            return self._finite(loss, what, step)
        bad = any_rank((~torch.isfinite(loss.detach())).float())
        inner.found_inf = bad  # the optimizer's step is a no-op on the device when set
        self._bad_count += bad
        first = (self._first_bad[0] < 0) & (bad > 0)
        self._first_bad[0].masked_fill_(first, step)
        self._first_bad[1].masked_fill_(first, 0 if what.startswith("discriminator") else 1)
        return True

    def check_deferred(self, step: int) -> bool:
        """At a log step: act on non-finite updates since the last check. True if diverged."""
        count = int(self._bad_count.item())  # the one host sync, every log_every steps
        if not count:
            return False
        first_step, which = (int(v) for v in self._first_bad.tolist())
        what = ("discriminator", "generator")[which]
        self._bad_count.zero_()
        self._first_bad.fill_(-1)
        if self.settings.action == "skip" and self.skipped_steps + count <= self.settings.max_skips:
            self.skipped_steps += count
            self._skipped(first_step)
            return False
        self._declare(first_step, f"non-finite {what} loss ({count} update(s) skipped on the "
                                  f"device before the check at step {step})")
        return True

    def _finite(self, loss: torch.Tensor, what: str, step: int) -> bool:
        if not bool(any_rank((~torch.isfinite(loss.detach())).float())):
            return True
        if self.settings.action == "skip" and self.skipped_steps < self.settings.max_skips:
            self.skipped_steps += 1
            self._skipped(step)
            return False
        self._declare(step, f"non-finite {what} ({float(loss.detach())})")
        return False

    def _skipped(self, step: int) -> None:
        self._host.log_scalars({"events/skipped_step": 1.0, "events/skipped_total": self.skipped_steps}, step)
        # on the console too (rank 0): a skipped update is an event the user should see
        if getattr(getattr(self._host, "trainer", None), "is_global_zero", True):
            _log.warning(f"generator step {step}: non-finite update skipped "
                         f"({self.skipped_steps} of at most {self.settings.max_skips}; "
                         f"divergence.action=skip)")

    def _weights_finite(self) -> bool:
        """Whether every floating tensor of the host's state is finite, on every rank."""
        tensors = [t for t in self._host.state_dict().values() if t.is_floating_point()]
        if not tensors:
            return True
        bad = torch.stack([(~torch.isfinite(t)).any() for t in tensors]).any().float()
        return not bool(any_rank(bad))

    def _declare(self, step: int, reason: str) -> None:
        self.diverged = {"step": step, "reason": reason, "skipped_before": self.skipped_steps,
                         "checkpoint": None}
        self._host.log_scalars({"events/diverged": 1.0}, step)
        if self.checkpoint:
            if self._weights_finite():
                self.diverged["checkpoint"] = self.checkpoint
                self._host.trainer.save_checkpoint(self.checkpoint, weights_only=False)
            else:
                self.diverged["reason"] += (
                    "; the weights themselves were already non-finite (an update overflowed), so "
                    "no diverged.ckpt was written: the newest finite state is the run's last "
                    "checkpoint (checkpoints/last.ckpt)")
        self._host.trainer.should_stop = True
