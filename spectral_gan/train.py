"""spectral-gan-train: compose data, generator, discriminator (with its norm), loss, and train.

A thin Hydra entry point; everything it builds comes from configs/ by ``_target_``.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spectral_gan import config_resolvers
from spectral_gan.errors import ConfigError
from spectral_gan.evaluation import Evaluator
from spectral_gan.norms import NormHook, normalize_all

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
HPARAM_GROUPS = ("data", "generator", "discriminator", "norm", "loss", "optimizer")
HPARAM_KEYS = ("steps", "n_dis", "batch_size", "seed", "ema", "g_norm", "eval")
RUN_CONFIG_KEYS = ("data", "generator", "discriminator", "norm", "loss", "g_norm", "steps",
                   "n_dis", "batch_size", "seed", "ema")
G_NORMS = ("none", "sn", "bsn", "osn")  # reparameterizations only: no batch centering in G


def validate(cfg: DictConfig) -> None:
    """Reject settings that cannot train, before anything is built."""
    for key in ("steps", "n_dis", "batch_size"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]}")
    for key in ("log_every", "sample_every", "checkpoint_every"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"{key} must be a positive number of generator steps, got {cfg[key]}")
    if cfg.get("g_norm", "none") not in G_NORMS:
        raise ConfigError(f"g_norm={cfg.g_norm} is not available for the generator; valid options "
                          f"are: {', '.join(G_NORMS)}")


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
    for key in HPARAM_GROUPS + HPARAM_KEYS:
        node = cfg.get(key)
        params[key] = _strip_targets(OmegaConf.to_container(node, resolve=True)
                                     if OmegaConf.is_config(node) else node)
    return params


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
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.check_available()
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
    module.evaluator = build_evaluator(cfg, datamodule)
    module.run_config = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k])
                         else cfg[k] for k in RUN_CONFIG_KEYS if k in cfg}
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    run_dir = cfg.paths.run_dir
    return {
        "run_dir": run_dir,
        "gen_step": module.gen_step,
        "checkpoint": os.path.join(run_dir, "checkpoints", "last.ckpt"),
        "samples": os.path.join(run_dir, "samples", f"step_{module.gen_step:06d}.png"),
        "trainer": trainer,
        "module": module,
    }


def config_error_in(err: BaseException | None) -> ConfigError | None:
    """The ConfigError behind ``err`` (hydra.utils.instantiate wraps what targets raise)."""
    while err is not None:
        if isinstance(err, ConfigError):
            return err
        err = err.__cause__ or err.__context__
    return None


def _report(result: dict[str, Any]) -> None:
    if not result["trainer"].is_global_zero:
        return
    run_dir = result["run_dir"]
    print(f"\nTrained {result['gen_step']} generator steps. Run directory: {run_dir}")
    if os.path.exists(result["samples"]):
        print(f"  final samples: {result['samples']}")
    print(f"  checkpoint:    {result['checkpoint']}")
    print(f"  TensorBoard:   tensorboard --logdir {os.path.dirname(os.path.abspath(run_dir))}")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _main(cfg: DictConfig) -> None:
    # Hydra restores its saved resolver table before the job runs (hydra.core.singleton), which
    # drops resolvers registered at import time in some launch paths: register again here.
    config_resolvers.register()
    try:
        result = train(cfg)
    except Exception as err:  # noqa: BLE001  unwrap Hydra's InstantiationException
        cause = config_error_in(err)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(2)
    _report(result)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
