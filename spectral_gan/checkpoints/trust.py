"""What a checkpoint's stored config may make spectral-gan-sample / -eval build or import.

``weights_only=True`` keeps pickled code out of a checkpoint, but the stored config still names
``_target_`` callables that ``hydra.utils.instantiate`` would call, and a ``norm.module`` that
would be imported. A file from elsewhere could name ``pathlib.Path.write_text`` or ``os.system``,
so before anything is built the parts that will be used are checked against this rule:

* ``data`` and ``generator`` (the only parts instantiated) are resolved once; every ``_target_``
  in them, nested ones and those inside ``_args_`` included, must name a class *defined* in
  ``spectral_gan.data``, ``spectral_gan.models`` or ``spectral_gan.norms`` (by its
  ``__module__``, so a re-exported ``os`` or ``Path`` does not pass) that is a data module, an
  ``nn.Module`` or a ``NormHook``; functions are refused, and so is ``_partial_: true``;
* no resolved string may still hold ``${`` (``instantiate`` would resolve it a second time);
* ``norm.module``, imported when ``g_norm`` is set, must be ``spectral_gan`` or below it.

A checkpoint of a run that used your own model, data module or normalization fails this check;
load it with ``trust_checkpoint=true`` (configs/sample.yaml, configs/eval.yaml), which skips the
check: only for files you trust as you would trust code.
"""
from __future__ import annotations

import importlib
from typing import Any

from omegaconf import OmegaConf

from spectral_gan.errors import ConfigError

ALLOWED_PACKAGES = ("spectral_gan.data", "spectral_gan.models", "spectral_gan.norms")
HOW_TO_TRUST = ("pass trust_checkpoint=true only for a file you trust as you trust code, e.g. "
                "your own run with your own model, data module or normalization")


class UntrustedCheckpoint(ConfigError):
    """A checkpoint whose config names something outside what spectral-gan builds from one."""


def _under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _allowed_classes() -> tuple[type, ...]:
    import pytorch_lightning as pl
    from torch import nn

    from spectral_gan.norms import NormHook

    return pl.LightningDataModule, nn.Module, NormHook


def check_target(target: Any) -> None:
    """Raise UntrustedCheckpoint unless ``target`` names an allowed spectral-gan class.

    Only modules under ``ALLOWED_PACKAGES`` are imported while checking."""
    if not isinstance(target, str) or not _under(target, ALLOWED_PACKAGES):
        raise UntrustedCheckpoint(f"its config names _target_={target!r}, which is not a class of "
                                  f"{', '.join(ALLOWED_PACKAGES)}")
    module_name, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        raise UntrustedCheckpoint(f"its config names _target_={target!r}, which does not exist "
                                  f"in this version of spectral_gan") from None
    if not (isinstance(obj, type) and _under(obj.__module__, ALLOWED_PACKAGES)
            and issubclass(obj, _allowed_classes())):
        raise UntrustedCheckpoint(f"its config names _target_={target!r}, which is not a data "
                                  f"module, model or norm class defined in spectral_gan")


def _walk(node: Any, where: str) -> None:
    if isinstance(node, dict):
        if "_target_" in node:
            check_target(node["_target_"])
        if node.get("_partial_", False) is not False:
            raise UntrustedCheckpoint(f"its config sets {where}._partial_, which spectral-gan "
                                      f"never stores")
        for key, value in node.items():
            _walk(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{where}[{i}]")
    elif isinstance(node, str) and "${" in node:
        raise UntrustedCheckpoint(f"its config value {where}={node!r} holds an interpolation "
                                  f"after resolution")


def check_norm_modules(modules: Any) -> None:
    """``norm.module`` entries (imported to register a normalization) must be spectral_gan's."""
    for name in [modules] if isinstance(modules, str) else list(modules or []):
        if not isinstance(name, str) or not _under(name, ("spectral_gan",)):
            raise UntrustedCheckpoint(f"its config imports norm.module={name!r}, a module outside "
                                      f"spectral_gan")


def checked_parts(stored: dict[str, Any], path: str) -> dict[str, Any]:
    """The stored config, resolved, after checking what ``load_generator`` will use of it.

    Raises UntrustedCheckpoint (a ConfigError: one sentence, exit 2) before anything is built."""
    try:
        try:
            resolved = OmegaConf.to_container(OmegaConf.create(stored), resolve=True)
        except Exception as err:  # noqa: BLE001  an interpolation that cannot resolve
            raise UntrustedCheckpoint(f"its config cannot be resolved ({type(err).__name__})") from None
        for part in ("data", "generator"):
            if not isinstance(resolved.get(part), dict) or "_target_" not in resolved[part]:
                raise UntrustedCheckpoint(f"its config has no {part}._target_")
            _walk(resolved[part], part)
        if resolved.get("g_norm", "none") != "none":
            norm = resolved.get("norm") or {}
            check_norm_modules(norm.get("module") if isinstance(norm, dict) else None)
    except UntrustedCheckpoint as err:
        raise UntrustedCheckpoint(f"refusing checkpoint {path}: {err}; nothing was built from it; "
                                  f"{HOW_TO_TRUST}") from None
    return resolved
