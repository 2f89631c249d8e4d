"""What the commands share: the config directory, composing a config, clean config-error exits."""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from spectral_gan.errors import ConfigError

# configs/ beside the package (the repository layout; the package is installed editable).
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "configs")


def compose_config(config_name: str, overrides: list[str], run_dir: str | None = None) -> DictConfig:
    """The config a command would run with ``overrides``, composed without launching it (for
    tests, scripts and in-process benchmarks); ``run_dir`` stands in for Hydra's output dir."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.paths.run_dir = run_dir
    return cfg


def config_error_in(err: BaseException | None) -> ConfigError | None:
    """The ConfigError behind ``err`` (hydra.utils.instantiate wraps what targets raise)."""
    while err is not None:
        if isinstance(err, ConfigError):
            return err
        err = err.__cause__ or err.__context__
    return None


def report_config_error(err: BaseException) -> bool:
    """Print the ConfigError behind ``err`` as one line; False if there is none."""
    cause = config_error_in(err)
    if cause is None:
        return False
    print(f"error: {cause}", file=sys.stderr)
    return True


def or_exit_on_config_error(task: Callable[[], Any]) -> Any:
    """Run ``task``; a ConfigError behind whatever it raises becomes one line and exit status 2."""
    try:
        return task()
    except Exception as err:  # noqa: BLE001  unwrap Hydra's InstantiationException
        if not report_config_error(err):
            raise
        sys.exit(2)


def trust_flag(cfg: DictConfig) -> bool:
    """``trust_checkpoint``: whether a checkpoint's config may name code outside spectral_gan
    (``spectral_gan.checkpoint_trust``); only ``true`` or ``false``, so a typo never trusts."""
    value = cfg.get("trust_checkpoint", False)
    if not isinstance(value, bool):
        raise ConfigError(f"trust_checkpoint must be true or false, got {value!r}")
    return value


def pick_device(name: str) -> "torch.device":
    """``auto``: the GPU when there is one, else the CPU; otherwise the device named."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device={name!r} is not a device ({err}); use auto, cpu, cuda or cuda:N") from None
