"""Resuming a run from a checkpoint: refuse one that does not fit, continue in its run directory.

A resume must continue the same run. What would change it silently is compared with the
checkpoint's stored config (``spectral_gan_config``) before anything is built:

- what a step is: ``n_dis`` and ``batch_size`` (each loader batch holds ``n_dis`` real batches:
  the position in the data stream derives from them);
- what the state dict holds: the networks (``generator``, ``discriminator``, ``norm``,
  ``g_norm``), the data's kind and shape, and whether there is an EMA generator (read from the
  checkpoint's weights, so it holds for checkpoints of any version).

Keys missing from the stored config were added to the config after the checkpoint was written;
the checkpoint ran with their default, so they are not a difference. Other changes (learning
rates, ``steps``, the EMA decay, logging cadences) are the user's to make.
"""
from __future__ import annotations

import math
import os
from typing import Any


import torch
from omegaconf import DictConfig, open_dict

from spectral_gan.checkpoints.load import read_checkpoint, saved_gen_step
from spectral_gan.checkpoints.resume_command import newest_last_checkpoint
from spectral_gan.errors import ConfigError
from spectral_gan.config.run_config import run_config

# What must match between a checkpoint and the config that resumes it (a key, or a group whose
# every key must match).
RESUME_KEYS = ("n_dis", "batch_size", "generator", "discriminator", "norm", "g_norm",
               "data._target_", "data.name", "data.image_size", "data.channels")


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _compared(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUME_KEYS)


def differences(saved_config: dict[str, Any], current_config: dict[str, Any],
                saved_state: dict[str, Any]) -> list[str]:
    """Each difference that would change the run, as ``key=<saved> in the checkpoint but
    <current> in the config``."""
    from spectral_gan.norms.options import effective

    saved_config, current_config = dict(saved_config), dict(current_config)
    for config in (saved_config, current_config):  # the norm as it runs, not as it is spelled
        if isinstance(config.get("norm"), dict):
            config["norm"] = effective(config["norm"])
    saved, current = _flat(saved_config), _flat(current_config)
    diff = [f"{k}={saved[k]!r} in the checkpoint but {current.get(k)!r} in the config"
            for k in sorted(saved) if _compared(k) and saved[k] != current.get(k)]
    has_ema = any(k.startswith("G_ema.") for k in saved_state)
    wants_ema = float((current_config.get("ema") or {}).get("decay", 0) or 0) > 0
    if has_ema != wants_ema:
        diff.append(f"the checkpoint {'has' if has_ema else 'has no'} EMA generator but "
                    f"ema.decay={current.get('ema.decay')!r} in the config "
                    f"({'> 0' if has_ema else '0'} needed)")
    return diff


def check_resumable(cfg: DictConfig, ckpt: dict[str, Any], path: str) -> None:
    """Refuse a checkpoint whose step, batch, networks or data differ from the config."""
    diff = differences(ckpt["spectral_gan_config"], run_config(cfg), ckpt.get("state_dict", {}))
    if diff:
        raise ConfigError(f"checkpoint {path} does not match this config: {'; '.join(diff[:4])}"
                          f"{' (and more)' if len(diff) > 4 else ''}; a resume cannot change "
                          f"what a step is or which weights the checkpoint holds (the networks, "
                          f"normalization, data, n_dis, batch_size, EMA), so drop those "
                          f"overrides or start a new run without ckpt_path")


def stored_best(path: str | None) -> float | None:
    """The ``best_metric`` stored in a ``best.ckpt`` (None: no such file, or unreadable). The
    file is memory-mapped: its weights are not read."""
    if not path or not os.path.isfile(path):
        return None
    try:
        value = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("best_metric")
    except Exception:  # noqa: BLE001  a corrupt best.ckpt is replaced by the next best
        return None
    return None if value is None or math.isinf(value) else float(value)


def prepare_resume(cfg: DictConfig) -> int:
    """Validate ``ckpt_path`` and point the run at the checkpoint's run directory, so logging
    continues in the same TensorBoard run. Returns the generator step to resume from."""
    path = cfg.get("ckpt_path")
    if path == "auto":  # requeued or restarted job: resume if this run dir has a checkpoint
        path = newest_last_checkpoint(cfg.paths.run_dir)
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
    return saved_gen_step(ckpt)
