"""The full evaluation protocol on a checkpoint's generator, written as JSON."""
from __future__ import annotations

import datetime
import json
import os
import sys
from typing import Any

import torch

from spectral_gan.checkpoints.load import load_generator
from spectral_gan.evaluation import Evaluator


def default_output(ckpt_path: str, checkpoint: str) -> str:
    """``<run dir>/eval_<checkpoint name>.json``."""
    return os.path.join(os.path.dirname(os.path.dirname(checkpoint)),
                        f"eval_{os.path.splitext(os.path.basename(ckpt_path))[0]}.json")


def evaluate_checkpoint(ckpt_path: str, eval_cfg: Any, seed: int, device: torch.device,
                        out: str | None = None, weights: str = "auto", trust: bool = False,
                        progress: bool = False) -> dict:
    """Metrics of the ``eval:`` protocol for a checkpoint, saved to ``out`` (``weights``: auto =
    EMA weights if any, ema, raw; ``trust``: build whatever the checkpoint's config names, see
    ``checkpoint.load_generator``; ``progress``: bars on stderr, and on a CPU with Inception
    the time it will take, measured first). A class-conditional generator (its ``conditional``
    attribute true) is evaluated as one: it is asked for the evaluator's balanced labels,
    ``generator(z, labels)``, and gets the conditional metrics as well."""
    generator, datamodule, info = load_generator(ckpt_path, weights, trust=trust)
    generator.to(device)
    conditional = bool(getattr(generator, "conditional", False))
    evaluator = Evaluator.from_config(datamodule, eval_cfg,
                                      num_classes=generator.num_classes if conditional else None)
    evaluator.progress = progress
    estimate = evaluator.inception_estimate(device) if progress else None
    if estimate:
        print(estimate, file=sys.stderr, flush=True)
    gen = torch.Generator().manual_seed(int(seed))

    @torch.no_grad()
    def sample(n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = torch.randn(n, generator.z_dim, generator=gen).to(device)
        return generator(z, labels) if conditional else generator(z)

    metrics = evaluator.evaluate(sample, device)
    result = {"metrics": {k.replace("metrics/", ""): v for k, v in metrics.items()},
              "protocol": evaluator.protocol, **info,
              "evaluated_at": datetime.datetime.now().isoformat(timespec="seconds")}
    out = out or default_output(ckpt_path, info["checkpoint"])
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    result["out"] = out
    return result
