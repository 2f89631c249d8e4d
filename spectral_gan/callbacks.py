"""Lightning callbacks that count in generator steps (one training step = n_dis + 1 optimizer steps)."""
from __future__ import annotations

import json
import os
import resource
import signal
import threading
import time
from typing import Any

import torch

import pytorch_lightning as pl
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, TQDMProgressBar

from spectral_gan.schedule import gen_steps


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file in the same folder, then rename it into place.

    A crash or kill mid-write leaves the previous checkpoint intact instead of a truncated file.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class GracefulInterrupt(Callback):
    """On SIGTERM or SIGINT: finish the current step, save ``last.ckpt``, stop training cleanly.

    Resume with ``ckpt_path=<run dir>/checkpoints/last.ckpt``. A second signal while saving is
    ignored, so a checkpoint is never cut short by an impatient Ctrl-C.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, dirpath: str) -> None:
        self.dirpath = dirpath
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.received = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if self.received is None:
            return
        path = os.path.join(self.dirpath, "last.ckpt")
        trainer.save_checkpoint(path)
        pl_module.interrupted = {"signal": signal.Signals(self.received).name,
                                 "gen_step": pl_module.gen_step, "checkpoint": path}
        trainer.should_stop = True
        self.received = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous = {}


class StepCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, plus ``last.ckpt`` of the final state when training ends.

    Stock ModelCheckpoint with ``every_n_train_steps`` leaves the steps after the last periodic
    save unsaved; a finished run should always be resumable and evaluable from ``last.ckpt``.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class StepProgressBar(TQDMProgressBar):
    """Progress in generator steps, with the total that ``steps=`` asked for."""

    @property
    def total_train_batches(self) -> int | float:
        trainer = self.trainer
        if trainer.max_steps and trainer.max_steps > 0:
            return gen_steps(trainer.max_steps, trainer.lightning_module.n_dis)
        return super().total_train_batches

    def on_train_epoch_start(self, trainer: pl.Trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description("Training")
        # Resume: start the bar at the restored generator step.
        self.train_progress_bar.initial = trainer.lightning_module.gen_step


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
