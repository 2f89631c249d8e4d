"""spectral-gan-eval: the full evaluation protocol on a checkpoint, written as JSON."""
from __future__ import annotations

import datetime
import json
import os

import hydra
import torch
from omegaconf import DictConfig

from spectral_gan import config_resolvers
from spectral_gan.checkpoint import load_generator
from spectral_gan.evaluation import Evaluator
from spectral_gan.sample import pick_device
from spectral_gan.train import CONFIG_DIR, or_exit_on_config_error


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    generator, datamodule, info = load_generator(cfg.ckpt_path)
    device = pick_device(cfg.device)
    generator.to(device)
    ev = cfg.eval
    evaluator = Evaluator(datamodule, datamodule.dataset_name, num_samples=ev.num_samples,
                          batch_size=ev.batch_size, inception=ev.inception,
                          classifier=ev.classifier, kid=ev.kid,
                          reference_split=ev.reference_split, cache_dir=ev.cache_dir)
    gen = torch.Generator().manual_seed(int(cfg.seed))

    @torch.no_grad()
    def sample(n: int) -> torch.Tensor:
        return generator(torch.randn(n, generator.z_dim, generator=gen).to(device))

    metrics = evaluator.evaluate(sample, device)
    result = {"metrics": {k.replace("metrics/", ""): v for k, v in metrics.items()},
              "protocol": evaluator.protocol, **info,
              "evaluated_at": datetime.datetime.now().isoformat(timespec="seconds")}
    out = cfg.out or os.path.join(os.path.dirname(os.path.dirname(info["checkpoint"])),
                                  f"eval_{os.path.splitext(os.path.basename(cfg.ckpt_path))[0]}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    result["out"] = out
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def _main(cfg: DictConfig) -> None:
    config_resolvers.register()
    result = or_exit_on_config_error(lambda: evaluate_checkpoint(cfg))
    for name, value in result["metrics"].items():
        print(f"{name}: {value:.4f}")
    print(f"wrote {result['out']}")


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
