"""Resuming a run from a checkpoint: refuse one that does not fit, continue in its run directory."""
from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, open_dict

from spectral_gan.checkpoint import read_checkpoint
from spectral_gan.errors import ConfigError
from spectral_gan.run_config import run_config
from spectral_gan.schedule import gen_steps

# What must match between a checkpoint and the config that resumes it.
ARCHITECTURE_KEYS = ("generator", "discriminator", "norm", "g_norm", "data._target_",
                     "data.image_size", "data.channels", "data.name")


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
    current = _flat(run_config(cfg))
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
    return gen_steps(ckpt.get("global_step", 0), cfg.n_dis)
