"""A test-only callback: each rank writes its discriminator's power-iteration vectors and its
last evaluation metrics, so a test can compare ranks after a DDP run."""
from __future__ import annotations

import os

import pytorch_lightning as pl
import torch

from spectral_gan.norms import power_iterations


class RankProbe(pl.Callback):
    def __init__(self, out: str) -> None:
        self.out = out

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        os.makedirs(self.out, exist_ok=True)
        vectors = [torch.cat([p.u, p.v]).cpu() for p in power_iterations(pl_module.D)]
        torch.save({"vectors": vectors, "metrics": dict(getattr(pl_module, "last_metrics", {})),
                    "weights": [p.detach().cpu() for p in pl_module.D.parameters()]},
                   os.path.join(self.out, f"rank{trainer.global_rank}.pt"))
