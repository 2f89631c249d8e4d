"""The training loop's settings, grouped: what ``spectral_gan.module.GAN`` is built with.

Each group validates its own values once, when it is built (``ConfigError`` with the valid
choices). ``GANSettings.from_config`` reads them from the composed Hydra config, so the config
names each value once (``n_dis``, ``ema.decay``, ``divergence.action`` ...) and nothing repeats
them as ``${...}``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from spectral_gan.divergence import DivergenceSettings, FaultInjection
from spectral_gan.ema import EMASettings
from spectral_gan.errors import ConfigError
from spectral_gan.penalties import Penalty, get_penalty
from spectral_gan.schedule import Schedule
from spectral_gan.speed import check_joint_d_pass


# How a class-conditional GAN draws the labels of its generated samples: ``uniform`` (the
# projection paper's and SNGAN's choice) or ``data`` (the training set's class frequencies, for
# unbalanced data, where uniform labels would ask G for rare classes as often as common ones).
FAKE_LABELS = ("uniform", "data")


@dataclass(frozen=True)
class PenaltySettings:
    """A gradient penalty on D (``norm.penalty``) and its weight (None: the penalty's default)."""

    name: str = "none"
    weight: float | None = None

    @property
    def penalty(self) -> Penalty | None:
        return get_penalty(self.name)

    def __post_init__(self) -> None:
        get_penalty(self.name)  # unknown names are refused here, with the valid ones

    @property
    def effective_weight(self) -> float:
        p = self.penalty
        return float(self.weight if self.weight is not None else p.default_weight if p else 0.0)


@dataclass(frozen=True)
class MonitorSettings:
    """How the Lipschitz diagnostics are computed (``monitor.*``; their cadences are the
    schedule's): power-iteration steps per log for each convolution's operator norm (warm-started
    from the last log's vector), and samples per kind (real, fake, interpolated) for the input
    gradient lower bound."""

    lipschitz_iterations: int = 2
    lipschitz_samples: int = 16

    def __post_init__(self) -> None:
        for key in ("lipschitz_iterations", "lipschitz_samples"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"monitor.{key} must be a positive integer, got {getattr(self, key)}")


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes samples and its special checkpoints (None: nowhere, e.g. in tests)."""

    run_dir: str | None = None

    def _under(self, *parts: str) -> str | None:
        return os.path.join(self.run_dir, *parts) if self.run_dir else None

    @property
    def samples(self) -> str | None:
        return self._under("samples")

    @property
    def best_checkpoint(self) -> str | None:
        return self._under("checkpoints", "best.ckpt")

    @property
    def diverged_checkpoint(self) -> str | None:
        return self._under("checkpoints", "diverged.ckpt")


@dataclass(frozen=True)
class GANSettings:
    schedule: Schedule = field(default_factory=Schedule)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    ema: EMASettings = field(default_factory=EMASettings)
    divergence: DivergenceSettings = field(default_factory=DivergenceSettings)
    penalty: PenaltySettings = field(default_factory=PenaltySettings)
    fault: FaultInjection = field(default_factory=FaultInjection)
    # Real and fake through D as one batch: True, False, or auto (decided on the device).
    joint_d_pass: str | bool = False
    seed: int = 0   # the fixed sample noise and the evaluation noise derive from it
    # Class-conditional models: how the labels of generated samples are drawn (FAKE_LABELS).
    fake_labels: str = "uniform"

    def __post_init__(self) -> None:
        check_joint_d_pass(self.joint_d_pass)
        if self.fake_labels not in FAKE_LABELS:
            raise ConfigError(f"fake_labels={self.fake_labels!r}: choose one of {', '.join(FAKE_LABELS)} "
                              f"(uniform: every class equally often; data: the training data's class "
                              f"frequencies)")

    @classmethod
    def from_config(cls, cfg: Any) -> "GANSettings":
        """From a composed ``configs/train.yaml`` (top-level keys and the ema, divergence, fault,
        monitor, eval, norm and speed nodes)."""
        def node(name: str) -> dict[str, Any]:
            value = cfg.get(name) or {}
            return dict(value.items()) if hasattr(value, "items") else {}

        evaluation, norm, monitor = node("eval"), node("norm"), node("monitor")
        cadence = {k: int(monitor[k] or 0) for k in ("svd_every", "lipschitz_every", "layer_stats_every")
                   if k in monitor}
        return cls(
            schedule=Schedule(n_dis=int(cfg.n_dis), batch_size=int(cfg.batch_size),
                              log_every=int(cfg.log_every), sample_every=int(cfg.sample_every),
                              eval_every=int(evaluation.get("every", 0) or 0),
                              **cadence),
            monitor=MonitorSettings(**{k: int(monitor[k]) for k in
                                       ("lipschitz_iterations", "lipschitz_samples") if k in monitor}),
            ema=EMASettings(**node("ema")),
            divergence=DivergenceSettings(**node("divergence")),
            penalty=PenaltySettings(norm.get("penalty", "none") or "none", norm.get("penalty_weight")),
            fault=FaultInjection(**node("fault")),
            joint_d_pass=node("speed").get("joint_d_pass", "auto"),
            seed=int(cfg.seed),
            fake_labels=str(cfg.get("fake_labels", "uniform")),
        )
