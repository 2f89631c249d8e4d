"""The training loop's settings, grouped: what ``spectral_gan.training.gan.GAN`` is built with.

Each group validates its own values once, when it is built (``ConfigError`` with the valid
choices). ``GANSettings.from_config`` reads them from the composed Hydra config, so the config
names each value once (``n_dis``, ``ema.decay``, ``divergence.action`` ...) and nothing repeats
them as ``${...}``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from spectral_gan.augment import parse_policy
from spectral_gan.training.divergence import DivergenceSettings, FaultInjection
from spectral_gan.training.ema import EMASettings
from spectral_gan.errors import ConfigError
from spectral_gan.penalties import Penalty, get_penalty
from spectral_gan.training.schedule import Schedule
from spectral_gan.training.captured_step import check_capture_step
from spectral_gan.training.speed import check_joint_d_pass


# How a class-conditional GAN draws the labels of its generated samples: ``uniform`` (the
# projection paper's and SNGAN's choice) or ``data`` (the training set's class frequencies, for
# unbalanced data, where uniform labels would ask G for rare classes as often as common ones).
FAKE_LABELS = ("uniform", "data")
# Learning-rate schedules: ``none`` (constant) or ``linear`` (both rates fall linearly to 0 over
# the run's generator steps from ``lr_decay_start``: chainer's LinearShift in SNGAN-projection,
# pfnet-research/sngan_projection ``train.py``, with ``iteration_decay_start: 0``).
LR_DECAYS = ("none", "linear")
# How a packing discriminator's fake tuples are generated: ``per_slot`` (PacGAN's code,
# fjxmlzn/PacGAN: G runs once per slot of a tuple, so batch-norm statistics are over B/m samples
# and the m samples of a tuple come from m different G calls) or ``joint`` (one G call over B).
PACK_GENERATOR = ("per_slot", "joint")


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
class LeCamSettings:
    """LeCam regularization of D (``lecam_weight``, ``lecam.*``; ``spectral_gan/lecam.py``):
    its weight (0: off), the anchors' EMA decay, the generator step from which they average (before
    it each anchor is the last batch's mean), and the clipped (authors' code) or two-sided form."""

    weight: float = 0.0
    decay: float = 0.99
    start: int = 1000
    one_sided: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or self.weight < 0:
            raise ConfigError(f"lecam_weight must be a number >= 0 (0: off; StudioGAN uses 0.3), "
                              f"got {self.weight!r}")
        if isinstance(self.decay, bool) or not isinstance(self.decay, (int, float)) \
                or not 0 <= self.decay < 1:
            raise ConfigError(f"lecam.decay must be a number in [0, 1), got {self.decay!r}")
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise ConfigError(f"lecam.start must be a generator step >= 0, got {self.start!r}")


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
    # Both updates compiled as whole graphs (training/gan_captured.py): True, False, or auto
    # (decided on the device), with this torch.compile backend (speed.compile_backend).
    capture_step: str | bool = False
    capture_backend: str = "inductor"
    seed: int = 0   # the fixed sample noise and the evaluation noise derive from it
    # Class-conditional models: how the labels of generated samples are drawn (FAKE_LABELS).
    fake_labels: str = "uniform"
    # Samples per generator update (None: batch_size); SNGAN-projection draws 128 against D's 64.
    g_batch_size: int | None = None
    lr_decay: str = "none"      # LR_DECAYS
    lr_decay_start: int = 0     # generator step at which the linear decay starts
    pack_generator: str = "per_slot"  # PACK_GENERATOR
    augment: tuple[str, ...] = ()  # DiffAugment policies of D's inputs (augment.policy); () off
    lecam: LeCamSettings = field(default_factory=LeCamSettings)

    def __post_init__(self) -> None:
        check_joint_d_pass(self.joint_d_pass)
        check_capture_step(self.capture_step)
        if not isinstance(self.capture_backend, str) or not self.capture_backend:
            raise ConfigError(f"speed.compile_backend must be a torch.compile backend name such "
                              f"as inductor, aot_eager or eager, got {self.capture_backend!r}")
        if self.lr_decay not in LR_DECAYS:
            raise ConfigError(f"lr_decay={self.lr_decay!r}: choose one of {', '.join(LR_DECAYS)} "
                              f"(linear: both learning rates fall linearly to 0 by the last step)")
        if isinstance(self.lr_decay_start, bool) or int(self.lr_decay_start) < 0:
            raise ConfigError(f"lr_decay_start must be a generator step >= 0, got {self.lr_decay_start!r}")
        if self.g_batch_size is not None and int(self.g_batch_size) < 1:
            raise ConfigError(f"g_batch_size must be a positive integer (or null: batch_size), "
                              f"got {self.g_batch_size!r}")
        if self.pack_generator not in PACK_GENERATOR:
            raise ConfigError(f"pack_generator={self.pack_generator!r}: choose one of "
                              f"{', '.join(PACK_GENERATOR)} (per_slot: one generator call per slot "
                              f"of a packed tuple, as PacGAN's code; joint: one call)")
        if self.fake_labels not in FAKE_LABELS:
            raise ConfigError(f"fake_labels={self.fake_labels!r}: choose one of {', '.join(FAKE_LABELS)} "
                              f"(uniform: every class equally often; data: the training data's class "
                              f"frequencies)")

    @classmethod
    def from_config(cls, cfg: Any) -> "GANSettings":
        """From a composed ``configs/train.yaml`` (top-level keys and the ema, divergence, fault,
        monitor, eval, norm, speed, augment and lecam nodes)."""
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
            capture_step=node("speed").get("capture_step", False),
            capture_backend=node("speed").get("compile_backend", "inductor"),
            seed=int(cfg.seed),
            fake_labels=str(cfg.get("fake_labels", "uniform")),
            g_batch_size=_optional_int(cfg.get("g_batch_size"), "g_batch_size"),
            lr_decay=str(cfg.get("lr_decay", "none") or "none"),
            lr_decay_start=_int(cfg.get("lr_decay_start", 0) or 0, "lr_decay_start"),
            pack_generator=str(cfg.get("pack_generator", "per_slot") or "per_slot"),
            augment=parse_policy(node("augment").get("policy")),
            lecam=LeCamSettings(weight=cfg.get("lecam_weight", 0.0) or 0.0, **node("lecam")),
        )


def _int(value: Any, key: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be an integer, got {value!r}") from None


def _optional_int(value: Any, key: str) -> int | None:
    return None if value is None else _int(value, key)
