"""spectral-gan-eval: the full evaluation protocol on a checkpoint, written as JSON."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from spectral_gan.config import resolvers as config_resolvers
from spectral_gan.cli.common import (CONFIG_DIR, asks_for_help, exit_if_plugin_missing,
                                     exit_on_bad_command_line, or_exit_on_config_error, pick_device,
                                     trust_flag)
from spectral_gan.checkpoints.resume_command import quote_ckpt_path


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _main(cfg: DictConfig) -> None:
    config_resolvers.register()
    from spectral_gan.checkpoints.evaluate import evaluate_checkpoint  # torch: not for --help
    from spectral_gan.training.quiet import quiet_lightning

    quiet_lightning()
    result = or_exit_on_config_error(lambda: evaluate_checkpoint(
        cfg.ckpt_path, cfg.eval, cfg.seed, pick_device(cfg.device), cfg.out or None,
        cfg.get("weights", "auto"), trust_flag(cfg), progress=True))
    for name, value in result["metrics"].items():
        print(f"{name}: {value:.4f}")
    print(f"wrote {result['out']}")


def main() -> None:
    if asks_for_help(sys.argv[1:]):
        _main()
        return
    sys.argv[1:] = [quote_ckpt_path(a) for a in sys.argv[1:]]  # gen_step=NNNNNN.ckpt of old runs
    exit_if_plugin_missing("eval")
    exit_on_bad_command_line("eval")
    _main()


if __name__ == "__main__":
    main()
