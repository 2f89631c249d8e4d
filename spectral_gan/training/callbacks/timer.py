"""Per-step wall time and peak memory, for benchmarks."""
from __future__ import annotations

import json
import os
import resource
import time

import torch

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, which starts afresh at exec;
    ``ru_maxrss`` would include the parent's peak when the process was spawned by a large one."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StepTimer(Callback):
    """Wall time of each training step (one generator update with its n_dis D updates), written
    as JSON at the end of training: for benchmarks (``+callbacks.step_timer=...``)."""

    def __init__(self, path: str, warmup: int = 3) -> None:
        self.path, self.warmup = path, warmup
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The last step also samples and evaluates: excluded, like the warm-up steps.
        steady = self.times[self.warmup:-1] or self.times
        result = {"step_times": steady, "all_step_times": self.times,
                  "peak_rss_mb": peak_rss_mb()}
        if torch.cuda.is_available():
            result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "w") as f:
            json.dump(result, f)
