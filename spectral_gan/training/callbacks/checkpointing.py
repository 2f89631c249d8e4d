"""Checkpoints: atomic writes, last.ckpt always the newest, best.ckpt after evaluations."""
from __future__ import annotations

import os
from typing import Any

import torch

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins import TorchCheckpointIO  # lightning_fabric's, re-exported

from spectral_gan.errors import RunEnvironmentError
from spectral_gan.checkpoints.resume import stored_best
from spectral_gan.training.callbacks.watched_metric import evaluated_now, metric_mode, primary_metric


def _fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable (POSIX: the directory entry lives in the directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not a platform where directories can be opened
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file in the same folder, fsync it, rename it into
    place and fsync the folder.

    A crash or kill mid-write leaves the previous checkpoint intact instead of a truncated file; a
    power loss after the rename cannot leave an empty file under the final name; a failed write
    removes its temporary file instead of leaving ``*.tmp-PID`` litter on a full disk.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:  # full disk, file size limit, permissions: the machine's
            if os.path.exists(tmp):
                os.remove(tmp)
            kept = ("the previous checkpoint there is intact" if os.path.exists(path)
                    else "no earlier checkpoint had that name")
            raise RunEnvironmentError(
                f"cannot write the checkpoint {path} ({err.strerror or err}); {kept}; free space "
                f"(or raise the limit) and resume with ckpt_path=auto") from None
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        _fsync_dir(os.path.dirname(os.path.abspath(path)))


class StepCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint that keeps ``last.ckpt`` the newest state, always.

    - ``last.ckpt`` of the final state when training ends: stock ModelCheckpoint with
      ``every_n_train_steps`` leaves the steps after the last periodic save unsaved.
    - No version counter: stock ModelCheckpoint writes ``last-v1.ckpt`` beside an existing
      ``last.ckpt`` it did not write itself (a resume whose callback state did not carry over), so
      ``last.ckpt`` would keep an old step while ``ckpt_path=auto`` and requeued jobs read it.
      A periodic ``gen_step_NNNNNN.ckpt`` met again (a resume from an older checkpoint) is replaced
      by the new state of that step.
    - Periodic names without ``=`` (``filename: gen_step_{step:06d}`` with
      ``auto_insert_metric_name: false``): Hydra's override grammar rejects an unquoted
      ``ckpt_path=.../gen_step=001000.ckpt``, so every name this writes works as ``ckpt_path=``.
    - ``save_last_now``: the one way anything else (the interrupt handler) writes ``last.ckpt``.
    - Before an evaluation (``GAN.evaluation_due``), ``last.ckpt`` is saved: an evaluation that
      outlasts a cluster's grace period after SIGTERM then loses one step, not up to
      ``checkpoint_every``.
    """

    def __init__(self, *args, save_last: bool = True, enable_version_counter: bool = False,
                 every_n_train_steps: int | None = None, **kwargs) -> None:
        # The periodic files are the stock callback's; last.ckpt is written here (keep_last), by
        # trainer.save_checkpoint, so its name never takes a version suffix.
        super().__init__(*args, save_last=False, enable_version_counter=enable_version_counter,
                         every_n_train_steps=every_n_train_steps, **kwargs)
        self.keep_last = bool(save_last)
        self.every = int(every_n_train_steps or 0)  # generator steps between periodic saves
        self._last_step: int | None = None  # the generator step last.ckpt holds (this run)

    def save_last_now(self, trainer: pl.Trainer) -> str:
        """Write ``last.ckpt`` of the current state unless it holds it already (all ranks call
        this: the save is collective); returns its path."""
        path = os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)
        if self._last_step != trainer.global_step or not os.path.isfile(path):
            trainer.save_checkpoint(path, weights_only=False)  # the whole state: a resume needs it
            self._last_step, self.last_model_path = trainer.global_step, path
        return path

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        due = getattr(pl_module, "evaluation_due", None)
        if self.keep_last and due is not None and due(pl_module.gen_step + 1):
            self.save_last_now(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        super().on_train_batch_end(trainer, pl_module, *args)  # the periodic file, when due
        if self.keep_last and self.every and trainer.global_step % self.every == 0:
            self.save_last_now(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.keep_last:
            self.save_last_now(trainer)


def step_checkpoint(trainer: pl.Trainer) -> StepCheckpoint | None:
    """The run's StepCheckpoint (the writer of ``last.ckpt``), wherever it is in the list."""
    return next((c for c in trainer.checkpoint_callbacks if isinstance(c, StepCheckpoint)), None)


class BestCheckpoint(ModelCheckpoint):
    """``best.ckpt``: Lightning's ModelCheckpoint with ``save_top_k=1`` on a logged metric.

    - ``monitor``: a metric in ``trainer.callback_metrics`` (``metrics/fid_classifier``,
      ``metrics/is_classifier`` ...); None: the evaluator's primary metric (none: no best.ckpt).
    - ``mode``: None takes the metric's direction from ``spectral_gan/metrics/registry.py``.
    - Considered after each evaluation (the metric's value is new then); a tie keeps the earlier
      checkpoint. Written through the trainer, so atomically (AtomicCheckpointIO).
    - On a resume from a checkpoint older than ``best.ckpt``, the better score of the two is
      kept: a worse evaluation after the resume does not replace the file.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "best", monitor: str | None = None,
                 mode: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_top_k", 1)
        kwargs.setdefault("enable_version_counter", False)
        kwargs.setdefault("auto_insert_metric_name", False)
        super().__init__(dirpath=dirpath, filename=filename, monitor=monitor,
                         mode=metric_mode(monitor, mode) if monitor else "min", every_n_train_steps=0,
                         every_n_epochs=1, save_on_train_epoch_end=False, **kwargs)
        self._mode_given = mode

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.monitor is None:
            self.monitor = primary_metric(pl_module)
            if self.monitor is not None:
                mode = metric_mode(self.monitor, self._mode_given)
                self.mode, self.kth_value = mode, torch.tensor(torch.inf if mode == "min" else -torch.inf)
        super().setup(trainer, pl_module, stage)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.monitor is None or trainer.ckpt_path is None:
            return
        path = os.path.join(self.dirpath, self.filename + self.FILE_EXTENSION)
        on_disk = self._score_on_disk(path, pl_module)
        current = None if self.best_model_score is None else float(self.best_model_score)
        better = on_disk is not None and (
            current is None or (on_disk > current if self.mode == "max" else on_disk < current))
        if better:
            score = torch.tensor(on_disk)
            self.best_k_models = {path: score}
            self.best_model_path = self.kth_best_model_path = path
            self.best_model_score = self.kth_value = score

    def _score_on_disk(self, path: str, pl_module: pl.LightningModule) -> float | None:
        """The score ``best.ckpt`` was saved with: this callback's state in it, or (files of
        earlier versions) the module's ``best_metric`` when the monitor is the primary metric."""
        if not os.path.isfile(path):
            return None
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001  a corrupt best.ckpt is replaced by the next best
            return None
        state = (ckpt.get("callbacks") or {}).get(self.state_key) or {}
        score = state.get("best_model_score")
        if score is not None:
            return float(score)
        return stored_best(path) if self.monitor == primary_metric(pl_module) else None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if self.monitor is None or not evaluated_now(pl_module) \
                or self.monitor not in trainer.callback_metrics:
            return
        # The stock top-k save, through the hook that runs it after a validation loop (which a
        # GAN run does not have): every_n_epochs=1 and save_on_train_epoch_end=False let it save.
        ModelCheckpoint.on_validation_end(self, trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # considered after evaluations only (above)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # nothing but improvements is saved
