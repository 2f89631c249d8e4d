"""spectral-gan-train: compose data, generator, discriminator (with its norm), loss, and train.

A thin Hydra entry point; everything it builds comes from configs/ by ``_target_``.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any, Callable

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from spectral_gan import config_resolvers
from spectral_gan.checkpoint import read_checkpoint
from spectral_gan.errors import ConfigError
from spectral_gan.evaluation import Evaluator
from spectral_gan.module import DIVERGENCE_ACTIONS, DIVERGENCE_CHECKS
from spectral_gan.norms import NormHook, normalize_all
from spectral_gan.speed import apply_speed_options, validate_speed

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
HPARAM_GROUPS = ("data", "generator", "discriminator", "norm", "loss", "optimizer")
HPARAM_KEYS = ("steps", "n_dis", "batch_size", "seed", "ema", "g_norm", "eval")
# What must match between a checkpoint and the config that resumes it.
ARCHITECTURE_KEYS = ("generator", "discriminator", "norm", "g_norm", "data._target_",
                     "data.image_size", "data.channels", "data.name")
RUN_CONFIG_KEYS = ("data", "generator", "discriminator", "norm", "loss", "g_norm", "steps",
                   "n_dis", "batch_size", "seed", "ema")
G_NORMS = ("none", "sn", "bsn", "osn")  # reparameterizations only: no batch centering in G


def compose_train_config(overrides: list[str], run_dir: str | None = None) -> DictConfig:
    """The config ``spectral-gan-train <overrides>`` would run, composed without launching it
    (for tests and in-process benchmarks); ``run_dir`` stands in for Hydra's output directory."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.paths.run_dir = run_dir
    return cfg


def validate(cfg: DictConfig) -> None:
    """Reject settings that cannot train, before anything is built."""
    for key in ("steps", "n_dis", "batch_size"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]}")
    for key in ("log_every", "sample_every", "checkpoint_every"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"{key} must be a positive number of generator steps, got {cfg[key]}")
    action = cfg.get("divergence", {}).get("action", "stop")
    if action not in DIVERGENCE_ACTIONS:
        raise ConfigError(f"divergence.action must be stop or skip, got {action!r}")
    check = cfg.get("divergence", {}).get("check", "deferred")
    if check not in DIVERGENCE_CHECKS:
        raise ConfigError(f"divergence.check must be deferred or every_update, got {check!r}")
    norm = cfg.get("norm", {})
    if (cfg.get("loss", {}).get("name") == "wgan" and norm.get("weight", "none") == "none"
            and norm.get("penalty", "none") == "none"):
        warnings.warn("loss=wgan without Lipschitz control (norm.weight=none, norm.penalty=none): "
                      "the critic is unbounded and training usually diverges; consider norm=sn or "
                      "norm=gp", UserWarning, stacklevel=2)
    if cfg.get("g_norm", "none") not in G_NORMS:
        raise ConfigError(f"g_norm={cfg.g_norm} is not available for the generator; valid options "
                          f"are: {', '.join(G_NORMS)}")
    validate_speed(cfg.get("speed", {}))


def plain(cfg: DictConfig, keys: tuple[str, ...]) -> dict[str, Any]:
    """The resolved values of ``keys`` as plain Python (dicts, lists, scalars)."""
    return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in keys if k in cfg}


def _strip_targets(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_targets(v) for k, v in node.items() if not str(k).startswith("_")}
    return node


def hparams_of(cfg: DictConfig) -> dict[str, Any]:
    """What the TensorBoard HParams view shows: group choices and their settings."""
    params: dict[str, Any] = {}
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        params["choice"] = {g: choices.get(g) for g in HPARAM_GROUPS + ("experiment",)}
    params.update(_strip_targets(plain(cfg, HPARAM_GROUPS + HPARAM_KEYS)))
    return params


class TrainingDiverged(RuntimeError):
    """Training stopped on a non-finite loss; a checkpoint of the last finite state was saved."""


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def check_resumable(cfg: DictConfig, ckpt: dict[str, Any], path: str) -> None:
    """Refuse a checkpoint whose architecture or normalization differs from the config."""
    saved = _flat(ckpt["spectral_gan_config"])
    current = _flat(plain(cfg, RUN_CONFIG_KEYS))
    keys = sorted(k for k in set(saved) | set(current)
                  if any(k == a or k.startswith(a + ".") for a in ARCHITECTURE_KEYS))
    diff = [f"{k}={saved.get(k)!r} in the checkpoint but {current.get(k)!r} in the config"
            for k in keys if saved.get(k) != current.get(k)]
    if diff:
        raise ConfigError(f"checkpoint {path} does not match this config: {'; '.join(diff[:4])}"
                          f"{' (and more)' if len(diff) > 4 else ''}; resume with the same "
                          f"architecture and normalization, or start a new run without ckpt_path")


def prepare_resume(cfg: DictConfig) -> int:
    """Validate ``ckpt_path`` and point the run at the checkpoint's run directory, so logging
    continues in the same TensorBoard run. Returns the generator step to resume from."""
    path = cfg.get("ckpt_path")
    if path == "auto":  # requeued or restarted job: resume if this run dir has a checkpoint
        candidate = os.path.join(cfg.paths.run_dir, "checkpoints", "last.ckpt")
        path = candidate if os.path.exists(candidate) else None
        with open_dict(cfg):
            cfg.ckpt_path = path
    if not path:
        return 0
    ckpt = read_checkpoint(path)
    check_resumable(cfg, ckpt, path)
    ckpt_dir = os.path.dirname(os.path.abspath(path))
    if os.path.basename(ckpt_dir) == "checkpoints":
        with open_dict(cfg):
            cfg.paths.run_dir = os.path.dirname(ckpt_dir)
    return int(ckpt.get("global_step", 0)) // (int(cfg.n_dis) + 1)


def build_evaluator(cfg: DictConfig, datamodule) -> Evaluator | None:
    ev = cfg.get("eval")
    if ev is None:
        return None
    return Evaluator(datamodule, datamodule.dataset_name, num_samples=ev.num_samples,
                     batch_size=ev.batch_size, inception=ev.inception, classifier=ev.classifier,
                     kid=ev.kid, reference_split=ev.reference_split, cache_dir=ev.cache_dir)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Build everything from ``cfg`` and fit. Returns the run's paths and final step."""
    validate(cfg)
    resume_step = prepare_resume(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.check_available()
    datamodule.resume_step = resume_step  # in-memory and 2-D data continue where they stopped
    generator = instantiate(cfg.generator, shape=datamodule.shape)
    if cfg.get("g_norm", "none") != "none":
        normalize_all(generator, NormHook(weight=cfg.g_norm))
    discriminator = instantiate(cfg.discriminator, shape=datamodule.shape, norm=instantiate(cfg.norm))
    module = instantiate(
        cfg.module,
        generator=generator,
        discriminator=discriminator,
        loss=instantiate(cfg.loss),
        g_optimizer=instantiate(cfg.optimizer.g),
        d_optimizer=instantiate(cfg.optimizer.d),
        reference_points=getattr(datamodule, "modes", None),
        hparams=hparams_of(cfg),
    )
    # After the module is built: its EMA copy of G is only sampled, so it stays uncompiled.
    apply_speed_options(module.G, module.D, cfg.get("speed", {}))
    module.evaluator = build_evaluator(cfg, datamodule)
    module.run_config = plain(cfg, RUN_CONFIG_KEYS)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    run_dir = cfg.paths.run_dir
    if module.diverged:
        d = module.diverged
        raise TrainingDiverged(
            f"training diverged at generator step {d['step']}: {d['reason']}. The last finite "
            f"state is in {os.path.join(run_dir, 'checkpoints', 'diverged.ckpt')}; the event is "
            f"logged as events/diverged. Lower the learning rates or try another normalization.")
    return {
        "run_dir": run_dir,
        "gen_step": module.gen_step,
        "checkpoint": os.path.join(run_dir, "checkpoints", "last.ckpt"),
        "samples": os.path.join(run_dir, "samples", f"step_{module.gen_step:06d}.png"),
        "trainer": trainer,
        "module": module,
        "interrupted": getattr(module, "interrupted", None),
        "metrics": dict(getattr(module, "last_metrics", {})),
        "health": list(module.health_reasons),
    }


def config_error_in(err: BaseException | None) -> ConfigError | None:
    """The ConfigError behind ``err`` (hydra.utils.instantiate wraps what targets raise)."""
    while err is not None:
        if isinstance(err, ConfigError):
            return err
        err = err.__cause__ or err.__context__
    return None


def or_exit_on_config_error(task: Callable[[], Any]) -> Any:
    """Run ``task``; a ConfigError behind whatever it raises becomes one line and exit status 2."""
    try:
        return task()
    except Exception as err:  # noqa: BLE001  unwrap Hydra's InstantiationException
        cause = config_error_in(err)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(2)


def _report(result: dict[str, Any], wall_s: float) -> None:
    if not result["trainer"].is_global_zero:
        return
    run_dir = result["run_dir"]
    if result.get("interrupted"):
        i = result["interrupted"]
        print(f"\nInterrupted by {i['signal']} after generator step {i['gen_step']}; saved "
              f"{i['checkpoint']}. Resume with the same overrides plus ckpt_path={i['checkpoint']}")
        return
    minutes, seconds = divmod(round(wall_s), 60)
    print(f"\nTrained {result['gen_step']} generator steps in {minutes} min {seconds:02d} s. "
          f"Run directory: {run_dir}")
    if os.path.exists(result["samples"]):
        print(f"  final samples: {result['samples']}")
    print(f"  checkpoint:    {result['checkpoint']}")
    print(f"  TensorBoard:   tensorboard --logdir {os.path.dirname(os.path.abspath(run_dir))}")
    if result.get("health"):
        print("WARNING: the samples have collapsed (health/collapsed = 1 in TensorBoard):\n  - "
              + "\n  - ".join(result["health"]))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _main(cfg: DictConfig) -> float | None:
    # Hydra restores its saved resolver table before the job runs (hydra.core.singleton), which
    # drops resolvers registered at import time in some launch paths: register again here.
    config_resolvers.register()
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    started = time.monotonic()
    try:
        result = train(cfg)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        if multirun:  # the other jobs of the sweep go on; the comparison counts the divergence
            return
        sys.exit(3)
    except Exception as err:  # noqa: BLE001  unwrap Hydra's InstantiationException
        cause = config_error_in(err)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        if multirun:
            return
        sys.exit(2)
    _report(result, time.monotonic() - started)
    if cfg.get("optimized_metric"):  # what a hyperparameter sweeper (optuna) minimizes
        value = result["metrics"].get(cfg.optimized_metric)
        if value is None:
            raise ConfigError(f"optimized_metric={cfg.optimized_metric} was not logged; metrics of "
                              f"this run: {', '.join(sorted(result['metrics'])) or 'none'}")
        return value
    return None


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
