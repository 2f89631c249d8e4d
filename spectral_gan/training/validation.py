"""The checks of a composed training config, in one pass before anything is built or any run
directory is created (``validate``, called first by ``train``): every refusal is one sentence
naming the key, not a traceback from deep inside a constructor after the run has started.

Checked here: values left ``???``, integers, the step counts, the loop's settings
(``GANSettings.from_config``), the generator's normalization, the speed switches, the optimizers'
values, ``threads`` and whether DiffAugment fits the data. A resume's fit with its checkpoint is
checked next, before the directory too (``checkpoints.resume.prepare_resume``); the data, the
networks and the evaluator refuse what only they can judge when they are built.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from omegaconf import DictConfig

from spectral_gan.errors import ConfigError
from spectral_gan.norms import generator_weight_norms, import_methods
from spectral_gan.training.settings import GANSettings
from spectral_gan.training.speed import validate_speed


# Top-level numbers read with int() all over; a non-number is refused first, in one sentence.
INTEGER_KEYS = ("steps", "n_dis", "batch_size", "log_every", "sample_every", "checkpoint_every",
                "seed")


def _whole(value: Any) -> bool:
    """An integer, or a float with no fraction (``steps=1e4``); not a bool."""
    return not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer()))


def check_integers(cfg: DictConfig) -> None:
    """``steps=abc`` (or 2.5, or true) is a ConfigError naming the key, not a ValueError
    traceback from the first ``int()``; whole numbers written as floats (``steps=1e4``) pass."""
    for key in INTEGER_KEYS:
        value = cfg.get(key)
        if not _whole(value):
            raise ConfigError(f"{key} must be an integer, got {value!r}")


# Integer values of the data node that models and data modules read with int().
DATA_INTEGER_KEYS = ("image_size", "channels", "num_modes", "batch_size", "num_workers")


def check_missing(cfg: DictConfig) -> None:
    """A value left ``???`` (MISSING) by its config group is one sentence naming the key and how
    to give it, not omegaconf's MissingMandatoryValue from inside instantiate."""
    from omegaconf import OmegaConf

    def walk(node: Any, prefix: str):  # unresolved: a bad value elsewhere must not raise here
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{prefix}{k}.")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{prefix}{i}.")
        elif node == "???":
            yield prefix[:-1]

    missing = sorted(k for k in walk(OmegaConf.to_container(cfg, resolve=False), "")
                     if not k.startswith("hydra."))  # Hydra's own, filled in at run time
    if missing:
        example = " ".join(f"{k}=<value>" for k in missing[:3])
        hint = " (a folder of images)" if "data.root" in missing else ""
        raise ConfigError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
                          f"{hint}; give {'it' if len(missing) == 1 else 'them'} on the command "
                          f"line: {example}")


def check_data_integers(cfg: DictConfig) -> None:
    data = cfg.get("data") or {}
    for key in DATA_INTEGER_KEYS:
        value = data.get(key)
        if value is None:
            continue
        if not _whole(value) or value < 0:
            raise ConfigError(f"data.{key} must be a whole number, got {value!r}")


def validate(cfg: DictConfig) -> GANSettings:
    """Reject settings that cannot train, before anything is built; the loop's settings."""
    check_missing(cfg)
    check_integers(cfg)
    check_data_integers(cfg)
    if int(cfg.steps) < 1:
        raise ConfigError(f"steps must be a positive integer, got {cfg.steps}")
    if int(cfg.checkpoint_every) < 1:
        raise ConfigError(f"checkpoint_every must be a positive number of generator steps, got "
                          f"{cfg.checkpoint_every}")
    settings = GANSettings.from_config(cfg)
    norm = cfg.get("norm", {})
    if (cfg.get("loss", {}).get("name") == "wgan" and norm.get("weight", "none") == "none"
            and norm.get("penalty", "none") == "none"):
        warnings.warn("loss=wgan without Lipschitz control (norm.weight=none, norm.penalty=none): "
                      "the critic is unbounded and training usually diverges; consider norm=sn or "
                      "norm=gp", UserWarning, stacklevel=2)
    import_methods(norm.get("module"))  # a g_norm defined outside spectral_gan registers on import
    g_norms = generator_weight_norms()  # declared by each method where it registers
    if cfg.get("g_norm", "none") not in g_norms:
        raise ConfigError(f"g_norm={cfg.g_norm} is not available for the generator; valid options "
                          f"are: {', '.join(g_norms)}")
    threads = cfg.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer or null, got {threads!r}")
    validate_speed(cfg.get("speed", {}))
    check_augment_fits_data(cfg, settings)
    for which in ("g", "d"):
        check_optimizer(cfg.get("optimizer", {}).get(which) or {}, f"optimizer.{which}")
    return settings


def check_augment_fits_data(cfg: DictConfig, settings: GANSettings) -> None:
    """DiffAugment transforms images: on a data group whose module declares ``kind = "points"``
    (the 2-D mixtures) it is refused here, before the run directory exists. A data module that
    cannot be located is left to ``instantiate`` (and ``run._fit`` checks the built shape)."""
    target = (cfg.get("data") or {}).get("_target_")
    if not settings.augment or not isinstance(target, str):
        return
    from hydra.utils import get_class

    try:
        module = get_class(target)
    except Exception:  # a bad _target_ gets instantiate's own error, with its name, later
        return
    kind = getattr(module, "kind", "image")
    if kind != "image":
        name = getattr(module, "dataset_name", target)
        raise ConfigError(f"augment=diffaugment transforms images, and data={name} holds {kind}: "
                          f"use augment=none")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def check_optimizer(node: Any, where: str) -> None:
    """Refuse values torch's optimizers would reject deep inside ``configure_optimizers`` (a
    traceback after the run directory exists): lr a positive finite number, betas two numbers in
    [0, 1), eps positive, weight_decay at least 0."""
    lr = _number(node.get("lr"))
    if "lr" in node and (lr is None or not math.isfinite(lr) or lr <= 0):
        raise ConfigError(f"{where}.lr must be a positive number, got {node.get('lr')!r}")
    if node.get("betas") is not None:
        betas = list(node.get("betas")) if not isinstance(node.get("betas"), str) else None
        values = [_number(b) for b in betas] if betas is not None else None
        if values is None or len(values) != 2 or any(v is None or not 0 <= v < 1 for v in values):
            raise ConfigError(f"{where}.betas must be two numbers in [0, 1) such as [0.5, 0.999], "
                              f"got {node.get('betas')!r}")
    for key, low, strict in (("eps", 0.0, True), ("weight_decay", 0.0, False)):
        if node.get(key) is None:
            continue
        value = _number(node.get(key))
        if value is None or not math.isfinite(value) or value < low or (strict and value == low):
            bound = "a positive number" if strict else "a number at least 0"
            raise ConfigError(f"{where}.{key} must be {bound}, got {node.get(key)!r}")
