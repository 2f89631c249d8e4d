"""SIGTERM/SIGINT: finish the step, save last.ckpt, stop cleanly (every rank at the same step)."""
from __future__ import annotations

import signal
import threading
from typing import Any

import torch

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from spectral_gan.errors import ConfigError
from spectral_gan.training.callbacks.checkpointing import step_checkpoint


def _chainable(handler: Any) -> bool:
    """A handler worth calling after ours: not the default ones (SIGINT's default raises
    KeyboardInterrupt, which would cut the checkpoint short)."""
    return callable(handler) and handler is not signal.default_int_handler


def _is_lightnings(handler: Any) -> bool:
    """Whether ``handler`` is the one Lightning's signal connector installed (known by its
    module, not by its private class name)."""
    return type(handler).__module__.startswith(("pytorch_lightning.", "lightning."))


class InterruptFlag:
    """The signal received by any rank: each rank's flag, reduced with MAX across ranks.

    Under DDP a signal may reach one rank only (``kill`` of one process, or a launcher that does
    not forward it); every rank must still take the same branch, since saving a checkpoint holds a
    barrier. The reduction is one all_reduce of a CPU int per step: on gloo (the default group on
    the CPU, or a gloo group made at set-up beside NCCL), so no GPU sync is added.
    """

    def __init__(self) -> None:
        self.local: int = 0
        self._group: Any = None
        self._distributed = False

    def setup(self) -> None:
        self.local = 0
        dist = torch.distributed
        self._distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if self._distributed:
            self._group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")

    def reduced(self) -> int:
        """The signal number any rank received since the last reset (0: none). Collective."""
        if not self._distributed:
            return self.local
        flag = torch.tensor([self.local], dtype=torch.int32)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, group=self._group)
        return int(flag.item())


class GracefulInterrupt(Callback):
    """On SIGTERM or SIGINT: finish the current step, save ``last.ckpt``, stop training cleanly.

    Resume with ``ckpt_path=<run dir>/checkpoints/last.ckpt`` (or ``ckpt_path=auto``). A second
    signal while saving is ignored, so a checkpoint is never cut short by an impatient Ctrl-C.

    ``last.ckpt`` is written by the run's ``StepCheckpoint`` (one writer, one file name). Under DDP
    the flag is reduced across ranks at each step end (``InterruptFlag``), so a signal to one rank
    stops every rank at the same step. Handlers that were installed before are chained, not
    dropped: a cluster tool's handler still runs. Lightning's own SIGTERM handler is the exception:
    it would raise ``SIGTERMException`` on the next step (no checkpoint) and broadcasts from inside
    the handler; what it is for, passing the signal to the child ranks it launched, is done here.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.flag = InterruptFlag()
        # The handlers before the run (a cluster tool's): built before fit, so before Lightning
        # sets its own; read here rather than from Lightning's signal connector.
        self._before: dict[int, Any] = ({s: signal.getsignal(s) for s in self.SIGNALS}
                                        if threading.current_thread() is threading.main_thread() else {})
        self._installed: dict[int, Any] = {}  # what our handler displaced; restored at teardown
        self._chained: dict[int, Any] = {}    # called after ours
        self._forward: Any = None             # Lightning's launcher: signals its child ranks

    @property
    def received(self) -> int | None:
        return self.flag.local or None

    def _handler(self, signum: int, frame: Any) -> None:
        first = not self.flag.local
        self.flag.local = signum
        if first and self._forward is not None:
            self._forward(signum)
        previous = self._chained.get(signum)
        if _chainable(previous):
            previous(signum, frame)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flag.setup()
        saver = step_checkpoint(trainer)
        if saver is None or not saver.keep_last:
            raise ConfigError("callbacks.interrupt saves through callbacks.model_checkpoint: keep a "
                              "spectral_gan.training.callbacks.StepCheckpoint with save_last=true")
        if threading.current_thread() is not threading.main_thread():
            return
        launcher = trainer.strategy.launcher
        self._forward = launcher.kill if getattr(launcher, "procs", None) else None
        for s in self.SIGNALS:
            self._installed[s] = signal.signal(s, self._handler)
            installed = self._installed[s]
            self._chained[s] = self._before.get(s) if _is_lightnings(installed) else installed

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        signum = self.flag.reduced()
        if not signum:
            return
        path = step_checkpoint(trainer).save_last_now(trainer)
        pl_module.interrupted = {"signal": signal.Signals(signum).name,
                                 "gen_step": pl_module.gen_step, "checkpoint": path}
        trainer.should_stop = True
        self.flag.local = 0

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for s, previous in self._installed.items():
            signal.signal(s, previous)
        self._installed, self._chained, self._forward = {}, {}, None
