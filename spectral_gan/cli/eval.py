"""spectral-gan-eval: the full evaluation protocol on a checkpoint, written as JSON."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from spectral_gan import config_resolvers
from spectral_gan.checkpoint_eval import evaluate_checkpoint
from spectral_gan.cli.common import CONFIG_DIR, exit_if_plugin_missing, or_exit_on_config_error, pick_device, trust_flag


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _main(cfg: DictConfig) -> None:
    config_resolvers.register()
    result = or_exit_on_config_error(lambda: evaluate_checkpoint(
        cfg.ckpt_path, cfg.eval, cfg.seed, pick_device(cfg.device), cfg.out or None,
        cfg.get("weights", "auto"), trust_flag(cfg)))
    for name, value in result["metrics"].items():
        print(f"{name}: {value:.4f}")
    print(f"wrote {result['out']}")


def main() -> None:
    exit_if_plugin_missing("eval")
    _main()


if __name__ == "__main__":
    main()
