"""spectral-gan-sample: write generated images of a checkpoint as PNG files (and an .npz)."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from spectral_gan.config import resolvers as config_resolvers
from spectral_gan.cli.common import (CONFIG_DIR, asks_for_help, exit_if_plugin_missing,
                                     exit_on_bad_command_line, or_exit_on_config_error, pick_device,
                                     trust_flag)
from spectral_gan.checkpoints.resume_command import quote_ckpt_path


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sample")
def _main(cfg: DictConfig) -> None:
    config_resolvers.register()
    from spectral_gan.sampling import write_samples  # torch and the models: not for --help

    result = or_exit_on_config_error(lambda: write_samples(
        cfg.ckpt_path, cfg.out, cfg.n, cfg.batch_size, cfg.seed, pick_device(cfg.device), cfg.npz,
        cfg.get("weights", "auto"), trust_flag(cfg), progress=True, classes=class_option(cfg)))
    per_class = (f", {cfg.n} of each of classes {result['classes']} in one folder per class"
                 if "classes" in result else "")
    print(f"wrote {result['n']} samples of generator step {result['gen_step']} "
          f"({result['generator_weights']} weights) to {result['out']}{per_class}")


def class_option(cfg: DictConfig):
    """``class=3`` or ``class=[0,3]`` (``class`` is the option's name, a Python keyword)."""
    value = cfg.get("class")
    return list(value) if OmegaConf.is_list(value) else value


def main() -> None:
    if asks_for_help(sys.argv[1:]):
        _main()
        return
    sys.argv[1:] = [quote_ckpt_path(a) for a in sys.argv[1:]]  # gen_step=NNNNNN.ckpt of old runs
    exit_if_plugin_missing("sample")
    exit_on_bad_command_line("sample")
    _main()


if __name__ == "__main__":
    main()
