"""What a run records about its config: the HParams table and the config stored in checkpoints."""
from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

HPARAM_GROUPS = ("data", "generator", "discriminator", "norm", "loss", "optimizer")
HPARAM_KEYS = ("steps", "n_dis", "batch_size", "seed", "ema", "g_norm", "eval", "tags")
# Stored in every checkpoint: what spectral-gan-sample / -eval need to rebuild the networks, and
# what a resume compares (spectral_gan.checkpoints.resume).
RUN_CONFIG_KEYS = ("data", "generator", "discriminator", "norm", "loss", "g_norm", "steps",
                   "n_dis", "batch_size", "seed", "ema")


def plain(cfg: DictConfig, keys: tuple[str, ...]) -> dict[str, Any]:
    """The resolved values of ``keys`` as plain Python (dicts, lists, scalars)."""
    return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in keys if k in cfg}


def run_config(cfg: DictConfig) -> dict[str, Any]:
    return plain(cfg, RUN_CONFIG_KEYS)


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
