"""Build everything a composed ``configs/train.yaml`` describes and fit it: ``train(cfg)``.

The library side of ``spectral-gan-train`` (``spectral_gan.cli.train`` is the command); usable
from scripts and tests with a config from ``spectral_gan.cli.train.compose_train_config``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import threading
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from spectral_gan.training.callbacks import BestCheckpoint, step_checkpoint
from spectral_gan.errors import ConfigError, install_hint
from spectral_gan.evaluation import Evaluator
from spectral_gan.training.callbacks.diagnostics import LayerDiagnostics
from spectral_gan.training.callbacks.sample_grid import SampleGrids
from spectral_gan.training.gan import GAN
from spectral_gan.norms import NormHook, normalize_all
from spectral_gan.training.quiet import quiet_lightning
from spectral_gan.checkpoints.resume import prepare_resume
from spectral_gan.config.run_config import hparams_of, run_config
from spectral_gan.runs.directory import run_directory
from spectral_gan.training.settings import GANSettings, RunPaths
from spectral_gan.training.speed import apply_speed_options
from spectral_gan.training.validation import validate


log = logging.getLogger(__name__)
_info = rank_zero_only(log.info)


class TrainingDiverged(RuntimeError):
    """Training stopped on a non-finite loss; a checkpoint of the last finite state was saved."""


def build_evaluator(cfg: DictConfig, datamodule, num_classes: int | None = None) -> Evaluator | None:
    ev = cfg.get("eval")
    return None if ev is None else Evaluator.from_config(datamodule, ev, num_classes=num_classes)


def conditional_classes(cfg: DictConfig, datamodule) -> int | None:
    """The number of classes of a class-conditional GAN (None for an unconditional one), after
    switching the data module to (images, labels) batches. Both networks must be conditional: a
    conditional G under an unconditional D gets no signal about its labels, and a projection D
    fed unconditional samples learns labels that G cannot follow."""
    g_cond = bool(cfg.generator.get("conditional", False))
    d_cond = cfg.discriminator.get("conditional", "none") or "none"
    if not g_cond and d_cond == "none":
        return None
    if not g_cond or d_cond == "none":
        raise ConfigError(
            f"a class-conditional GAN needs both networks conditional, got generator.conditional="
            f"{str(g_cond).lower()} and discriminator.conditional={d_cond}; set both "
            f"(generator.conditional=true discriminator.conditional=projection) or neither")
    datamodule.use_labels()  # a ConfigError naming the data when it has no labels
    return int(datamodule.num_classes)


# Loggers whose package is an optional extra: target -> (import name, extra).
OPTIONAL_LOGGERS = {
    "pytorch_lightning.loggers.WandbLogger": ("wandb", "wandb"),
    "pytorch_lightning.loggers.MLFlowLogger": ("mlflow", "mlflow"),
}


def build_loggers(cfg: DictConfig) -> list:
    """The ``logger:`` entries (any number: ``logger=[tensorboard,csv]``); one whose package is
    missing is a ConfigError naming the extra that installs it, before anything is built."""
    entries = {name: c for name, c in (cfg.get("logger") or {}).items() if c is not None}
    for name, entry in entries.items():
        module, extra = OPTIONAL_LOGGERS.get(entry.get("_target_"), (None, None))
        if module and importlib.util.find_spec(module) is None:
            raise ConfigError(f"logger {name} needs the {module} package, which is not installed: "
                              f"{install_hint(extra)}")
    return [instantiate(c) for c in entries.values()]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Build everything from ``cfg`` and fit. Returns the run's paths and final step."""
    quiet_lightning(resuming=bool(cfg.get("ckpt_path")))
    settings = validate(cfg)
    auto = cfg.get("ckpt_path") == "auto"
    resume_step = prepare_resume(cfg)
    with run_directory(cfg.paths.run_dir, resuming=auto or bool(cfg.get("ckpt_path"))), \
            signal_handlers_restored():
        return _fit(cfg, settings, resume_step)


@contextlib.contextmanager
def signal_handlers_restored():
    """SIGTERM's and SIGINT's handlers as they were before the run, whatever Lightning and the
    interrupt callback installed: in a long-lived process (a sequential sweep, the benchmark)
    each Trainer would otherwise chain onto the last one's stale handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _fit(cfg: DictConfig, settings: GANSettings, resume_step: int) -> dict[str, Any]:
    """Build everything and fit, in a run directory this process holds (``train``)."""
    if cfg.get("ckpt_path"):
        _info(f"Resuming {cfg.paths.run_dir} at generator step {resume_step} of {int(cfg.steps)} "
              f"from {cfg.ckpt_path}")
    threads = cfg.get("threads")
    if threads is not None:
        torch.set_num_threads(threads)  # a sweep's parallel jobs share the cores (hydra/launcher=local)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.check_available()
    datamodule.resume_step = resume_step  # in-memory and 2-D data continue where they stopped
    if settings.augment and len(datamodule.shape) != 3:
        raise ConfigError(f"augment=diffaugment transforms images, and data={datamodule.dataset_name} "
                          f"holds samples of shape {tuple(datamodule.shape)}: use augment=none")
    num_classes = conditional_classes(cfg, datamodule)
    classes = {} if num_classes is None else {"num_classes": num_classes}
    generator = instantiate(cfg.generator, shape=datamodule.shape, **classes)
    if cfg.get("g_norm", "none") != "none":
        normalize_all(generator, NormHook(weight=cfg.g_norm))
    discriminator = instantiate(cfg.discriminator, shape=datamodule.shape, norm=instantiate(cfg.norm),
                                **classes)
    evaluator = build_evaluator(cfg, datamodule, num_classes)
    label_probs = (datamodule.class_frequencies()
                   if num_classes is not None and settings.fake_labels == "data" else None)
    module = GAN(
        generator, discriminator, instantiate(cfg.loss),
        g_optimizer=instantiate(cfg.optimizer.g), d_optimizer=instantiate(cfg.optimizer.d),
        settings=settings, paths=RunPaths(cfg.paths.run_dir),
        evaluator=evaluator, run_config={**run_config(cfg), **classes},
        hparams=hparams_of(cfg), reference_points=getattr(datamodule, "modes", None),
        label_probs=label_probs,
    )
    # After the module is built: its EMA copy of G is only sampled, so it stays uncompiled.
    apply_speed_options(module.G, module.D, cfg.get("speed", {}))
    loggers = build_loggers(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks += [LayerDiagnostics(), SampleGrids()]  # part of the GAN step's logging, every run
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    if evaluator is not None and isinstance(trainer.accelerator, CPUAccelerator) and trainer.is_global_zero:
        estimate = evaluator.inception_estimate(torch.device("cpu"))
        if estimate:  # Inception on a CPU: say what each evaluation costs before it starts
            _info(f"Evaluation (every {cfg.eval.get('every')} generator steps and at the end): {estimate}")
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    run_dir = cfg.paths.run_dir
    last = getattr(step_checkpoint(trainer), "last_model_path", None)
    best = next((c for c in trainer.checkpoint_callbacks if isinstance(c, BestCheckpoint)), None)
    if module.diverged:
        d = module.diverged
        saved = (f" The last finite state is in {d['checkpoint']};" if d.get("checkpoint") else "")
        raise TrainingDiverged(
            f"training diverged at generator step {d['step']}: {d['reason']}.{saved} The event "
            f"is logged as events/diverged. Lower the learning rates or try another normalization.")
    return {
        "run_dir": run_dir,
        "gen_step": module.gen_step,
        "checkpoint": last or os.path.join(run_dir, "checkpoints", "last.ckpt"),
        "best_checkpoint": (best.best_model_path or None) if best is not None else None,
        "samples": os.path.join(run_dir, "samples", f"step_{module.gen_step:06d}.png"),
        "trainer": trainer,
        "module": module,
        "interrupted": getattr(module, "interrupted", None),
        "metrics": dict(getattr(module, "last_metrics", {})),
        "health": list(module.health_reasons),
    }
