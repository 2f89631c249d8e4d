"""Lightning callbacks of a GAN run (Lightning's ``global_step`` is the generator step: ``spectral_gan.module``)."""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
import time
from typing import Any

import torch

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm, _update_n, convert_inf
from pytorch_lightning.plugins import TorchCheckpointIO  # lightning_fabric's, re-exported
from pytorch_lightning.trainer.connectors.signal_connector import _HandlersCompose

from spectral_gan.errors import ConfigError, RunEnvironmentError
from spectral_gan.metrics.registry import higher_is_better
from spectral_gan.resume import stored_best


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


def _chainable(handler: Any) -> bool:
    """A handler worth calling after ours: not the default ones (SIGINT's default raises
    KeyboardInterrupt, which would cut the checkpoint short)."""
    return callable(handler) and handler is not signal.default_int_handler


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
        if saver is None or not saver.save_last:
            raise ConfigError("callbacks.interrupt saves through callbacks.model_checkpoint: keep a "
                              "spectral_gan.callbacks.StepCheckpoint with save_last=true")
        if threading.current_thread() is not threading.main_thread():
            return
        launcher = trainer.strategy.launcher
        self._forward = launcher.kill if getattr(launcher, "procs", None) else None
        for s in self.SIGNALS:
            self._installed[s] = signal.signal(s, self._handler)
            installed = self._installed[s]
            self._chained[s] = (self._before.get(s) if isinstance(installed, _HandlersCompose)
                                else installed)

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

    def __init__(self, *args, enable_version_counter: bool = False, **kwargs) -> None:
        super().__init__(*args, enable_version_counter=enable_version_counter, **kwargs)

    def save_last_now(self, trainer: pl.Trainer) -> str:
        """Write ``last.ckpt`` of the current state (all ranks call this); returns its path."""
        if self._last_global_step_saved != trainer.global_step or not self.last_model_path:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        return self.last_model_path

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        due = getattr(pl_module, "evaluation_due", None)
        if self.save_last and due is not None and due(pl_module.gen_step + 1):
            self.save_last_now(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def step_checkpoint(trainer: pl.Trainer) -> StepCheckpoint | None:
    """The run's StepCheckpoint (the writer of ``last.ckpt``), wherever it is in the list."""
    return next((c for c in trainer.checkpoint_callbacks if isinstance(c, StepCheckpoint)), None)


def _mode(monitor: str, mode: str | None) -> str:
    """``mode`` as given, else the metric's direction from ``spectral_gan/metrics/registry.py``."""
    if mode is not None:
        return mode
    try:
        return "max" if higher_is_better(monitor) else "min"
    except KeyError:
        raise ConfigError(f"monitor={monitor} is not an evaluation metric with a known direction; "
                          f"give mode=min or mode=max") from None


def _primary(pl_module: pl.LightningModule) -> str | None:
    evaluator = getattr(pl_module, "evaluator", None)
    return evaluator.primary if evaluator is not None else None


def _evaluated_now(pl_module: pl.LightningModule) -> bool:
    """Whether the training step that just ended evaluated (a module without evaluations, any
    LightningModule: every step counts)."""
    if not hasattr(pl_module, "evaluated_step"):
        return True
    return pl_module.evaluated_step is not None and pl_module.evaluated_step == pl_module.gen_step


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
                         mode=_mode(monitor, mode) if monitor else "min", every_n_train_steps=0,
                         every_n_epochs=0, save_on_train_epoch_end=False, **kwargs)
        self._mode_given = mode

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.monitor is None:
            self.monitor = _primary(pl_module)
            if self.monitor is not None:
                mode = _mode(self.monitor, self._mode_given)
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
        return stored_best(path) if self.monitor == _primary(pl_module) else None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if (self.monitor is None or self._should_skip_saving_checkpoint(trainer)
                or not _evaluated_now(pl_module) or self.monitor not in trainer.callback_metrics):
            return
        self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # nothing but improvements is saved


class EvalEarlyStopping(EarlyStopping):
    """Lightning's EarlyStopping, checked after each evaluation instead of at epoch ends (the
    data loaders never end an epoch): ``patience`` counts evaluations without improvement.

    ``monitor`` None: the evaluator's primary metric; ``mode`` None: the metric's direction from
    ``spectral_gan/metrics/registry.py``. Stock ``EarlyStopping`` also reads the metrics (they are
    in ``trainer.callback_metrics``) but checks only when an epoch ends.
    """

    def __init__(self, monitor: str | None = None, mode: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("check_on_train_epoch_end", False)
        super().__init__(monitor=monitor or "", mode=_mode(monitor, mode) if monitor else "min", **kwargs)
        self._mode_given = mode
        self._min_delta_given = abs(self.min_delta)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if not self.monitor:
            self.monitor = _primary(pl_module) or ""
            if self.monitor:
                self.mode = _mode(self.monitor, self._mode_given)
                self.min_delta = self._min_delta_given * (1 if self.mode == "max" else -1)
                self.best_score = torch.tensor(-torch.inf if self.mode == "max" else torch.inf)
        if not self.monitor:
            raise ConfigError("callbacks.early_stopping needs a monitor: this run has no "
                              "evaluation metric (set eval.classifier/eval.inception, or monitor=...)")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if self._should_skip_check(trainer) or not _evaluated_now(pl_module):
            return
        self._run_early_stopping_check(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass


class StepProgressBar(TQDMProgressBar):
    """Progress in generator steps, with the total that ``steps=`` asked for:
    ``gen step 1200/10000  12%|█▏   | [01:10<08:10, 17.1 steps/s, loss_d=..., loss_g=...]``.

    Lightning's bar counts batches of the current epoch (``Epoch 0: 0/20``, ``Epoch 1`` after a
    resume); this one counts the module's generator steps, so a resume continues at its step.
    """

    BAR = ("gen step {n_fmt}/{total_fmt} {percentage:3.0f}%|{bar}| "
           "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    def _total(self, trainer: pl.Trainer) -> int | None:
        if trainer.max_steps and trainer.max_steps > 0:
            return trainer.max_steps
        return None

    @property
    def total_train_batches(self) -> int | float:
        total = self._total(self.trainer)
        return super().total_train_batches if total is None else total

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(position=2 * self.process_position, disable=self.is_disabled, leave=True,
                    dynamic_ncols=True, file=sys.stdout, smoothing=0, unit="step",
                    bar_format=self.BAR, total=self._total(self.trainer),
                    initial=self.trainer.lightning_module.gen_step)

    def on_train_epoch_start(self, trainer: pl.Trainer, *args) -> None:
        # One bar for the whole run: a new data epoch does not restart it.
        bar = self.train_progress_bar
        if bar.total is None:
            bar.total = convert_inf(self.total_train_batches)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        n, bar = pl_module.gen_step, self.train_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            _update_n(bar, n)
            bar.set_postfix(self.get_metrics(trainer, pl_module))


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
