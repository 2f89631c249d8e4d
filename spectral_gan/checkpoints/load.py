"""Rebuild the generator of a spectral-gan-train checkpoint, with clear errors for bad files."""
from __future__ import annotations

import os
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from spectral_gan.checkpoints.trust import checked_parts
from spectral_gan.errors import ConfigError
from spectral_gan.norms import NormHook, normalize_all


def read_checkpoint(path: str) -> dict[str, Any]:
    if not path or not os.path.isfile(path):
        raise ConfigError(f"checkpoint {path!r} does not exist; pass ckpt_path=<run dir>/checkpoints/last.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  truncated, not a zip, not a torch file ...
        raise ConfigError(f"checkpoint {path} could not be read ({type(err).__name__}: "
                          f"{str(err).splitlines()[0]}); it is corrupt or not a checkpoint") from None
    if not isinstance(ckpt, dict) or not ckpt.get("spectral_gan_config") or "state_dict" not in ckpt:
        raise ConfigError(f"{path} is not a spectral-gan-train checkpoint (no spectral_gan_config)")
    return ckpt


# Lightning's ``global_step`` is the generator step (the discriminator's optimizer steps are not
# counted: ``GAN.step_discriminator``); checkpoints say so with this key. Those written before
# 2026-12-05 lack it and counted every optimizer step, n_dis + 1 per generator step.
STEP_UNIT = ("step_unit", "generator")


def saved_gen_step(ckpt: dict[str, Any]) -> int:
    """The generator step a loaded checkpoint was saved at (of either step unit)."""
    step = int(ckpt.get("global_step", 0))
    if ckpt.get(STEP_UNIT[0]) == STEP_UNIT[1]:
        return step
    return step // (int((ckpt.get("spectral_gan_config") or {}).get("n_dis", 1)) + 1)


def count_generator_steps(ckpt: dict[str, Any]) -> None:
    """Make a checkpoint of the optimizer-step count resume at its generator step, in place, before
    Lightning restores its loops from it (``GAN.on_load_checkpoint``): ``global_step`` and the
    manual-optimization step counter of the saved fit loop, the one ``global_step`` is read from."""
    if ckpt.get(STEP_UNIT[0]) == STEP_UNIT[1]:
        return
    per_step = int((ckpt.get("spectral_gan_config") or {}).get("n_dis", 1)) + 1
    ckpt["global_step"] = saved_gen_step(ckpt)
    loop = (ckpt.get("loops") or {}).get("fit_loop") or {}
    counter = loop.get("epoch_loop.manual_optimization.optim_step_progress") or {}
    for part in counter.values():
        for key in ("ready", "completed"):
            if key in part:
                part[key] = int(part[key]) // per_step
    ckpt[STEP_UNIT[0]] = STEP_UNIT[1]


def checkpoint_gen_step(path: str) -> int:
    """The generator step a checkpoint file was saved at (without building any network)."""
    return saved_gen_step(read_checkpoint(path))


WEIGHTS = ("auto", "ema", "raw")


def _earlier_defaults(generator_cfg: Any) -> dict[str, Any]:
    """What a checkpoint written before a model's defaults changed needs to be rebuilt as it was
    trained: the ResNet generator's last BatchNorm was class-conditional and every BatchNorm had
    eps 1e-5 until 2026-12 (now the authors' plain last BatchNorm and eps 2e-5); a stored
    config without those keys predates the change."""
    if not str(generator_cfg.get("_target_", "")).endswith("ResNetGenerator"):
        return {}
    out: dict[str, Any] = {}
    if "last_bn" not in generator_cfg:
        out["last_bn"] = "conditional"
    if "bn_eps" not in generator_cfg:
        out["bn_eps"] = 1e-5
    return out


def load_generator(path: str, weights: str = "auto", trust: bool = False
                   ) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(generator in eval mode, its data module, facts) from a checkpoint.

    ``weights``: ``auto`` the EMA weights if the run has started averaging, else the trained
    generator's; ``ema`` or ``raw`` (the trained generator's, as of the checkpoint's step) to ask
    for one of them. The stored config's targets and imports are checked first
    (``checkpoint_trust``), so a checkpoint from elsewhere cannot call arbitrary code;
    ``trust=True`` skips that check."""
    if weights not in WEIGHTS:
        raise ConfigError(f"weights={weights!r}: choose one of {', '.join(WEIGHTS)}")
    ckpt = read_checkpoint(path)
    stored = ckpt["spectral_gan_config"]
    config = OmegaConf.create(stored if trust else checked_parts(stored, path))
    datamodule = instantiate(config.data)
    classes = {}
    if config.generator.get("conditional", False):
        # Stored by training; a checkpoint without it takes the data's (class folders may be gone)
        num_classes = config.get("num_classes") or datamodule.num_classes
        if not num_classes:
            raise ConfigError(f"{path} holds a class-conditional generator but neither the "
                              f"checkpoint nor its data ({config.data.get('_target_')}) says how "
                              f"many classes it has")
        classes["num_classes"] = int(num_classes)
    generator = instantiate(config.generator, shape=datamodule.shape,
                            **classes, **_earlier_defaults(config.generator))
    if config.get("g_norm", "none") != "none":
        # module: a g_norm defined outside spectral_gan is registered by the norm config's import
        normalize_all(generator, NormHook(weight=config.g_norm,
                                          module=config.get("norm", {}).get("module")))
    state = ckpt["state_dict"]
    ema = state.get("G_ema.n_averaged")
    has_ema = ema is not None and int(ema) > 0
    if weights == "ema" and not has_ema:
        raise ConfigError(f"{path} holds no EMA weights (ema.decay=0, or saved before ema.start)")
    prefix = "G_ema.module." if has_ema and weights != "raw" else "G."
    tensors = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        generator.load_state_dict(tensors)
    except RuntimeError as err:
        raise ConfigError(f"{path}: generator weights do not fit the generator its config "
                          f"describes ({str(err).splitlines()[0]})") from None
    info = {"checkpoint": os.path.abspath(path), "gen_step": saved_gen_step(ckpt),
            "generator_weights": "ema" if prefix.startswith("G_ema") else "generator"}
    return generator.eval(), datamodule, info
