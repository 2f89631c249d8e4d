"""One run per run directory: a lock held for the run's life, and no new run over an old one.

Two ``spectral-gan-train`` processes writing one directory would interleave their checkpoints,
event files and logs without a word, and a new run started in a finished run's directory would
replace its ``last.ckpt``. So a run (rank 0 of a DDP job: the other ranks share its directory):

- holds an exclusive OS lock on ``<run dir>/.run.lock`` from before it builds anything until it
  returns; the lock goes with the process, so a killed run leaves nothing to clean up. A second
  run into a locked directory is refused in one sentence;
- refuses to start fresh (no ``ckpt_path``) in a directory that already holds a run (a
  checkpoint or a TensorBoard event file); it may resume it (``ckpt_path=auto`` or a file).

``refuse_occupied_run_dir`` asks the same before Hydra writes ``.hydra/`` into a directory named
on the command line, so the earlier run's saved config is not overwritten either.
"""
from __future__ import annotations

import contextlib
import glob
import os
from typing import Iterator

from spectral_gan.errors import ConfigError

LOCK_NAME = ".run.lock"
HOW = "give each run its own hydra.run.dir, or resume that run with ckpt_path=auto"


def _rank() -> int:
    """This process's rank in a launched DDP job (0 outside one), from the launchers' variables."""
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        value = os.environ.get(name)
        if value and value.isdigit() and int(value) > 0:
            return int(value)
    return 0


def holds_run(run_dir: str) -> str | None:
    """What shows that ``run_dir`` holds a run (a checkpoint or an event file), or None."""
    for pattern in ("checkpoints/*.ckpt", "tb/**/events.out.tfevents.*"):
        found = sorted(glob.glob(os.path.join(run_dir, pattern), recursive=True))
        if found:
            return os.path.relpath(found[0], run_dir)
    return None


def _try_lock(handle) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            pid = f.read().strip()
    except OSError:
        pid = ""
    return f" (process {pid})" if pid.isdigit() else ""


def _in_use(run_dir: str, path: str) -> ConfigError:
    return ConfigError(f"run directory {run_dir} is in use by another run{_holder(path)}; nothing "
                       f"was written to it; {HOW} after that run ends")


def _refuse_if_it_holds_a_run(run_dir: str) -> None:
    found = holds_run(run_dir)
    if found:
        raise ConfigError(f"run directory {run_dir} already holds a run ({found}); a new run "
                          f"would overwrite it; {HOW}")


@contextlib.contextmanager
def run_directory(run_dir: str, resuming: bool) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the body; refuse a locked directory, and a fresh run in one
    that holds a run. Ranks above 0 of a DDP job share rank 0's directory and take no lock."""
    if _rank() > 0:
        yield
        return
    try:
        os.makedirs(run_dir, exist_ok=True)
        path = os.path.join(run_dir, LOCK_NAME)
        handle = open(path, "a+")
    except OSError as err:
        raise ConfigError(f"cannot write the run directory {run_dir} ({err.strerror or err}); "
                          f"choose a writable place with hydra.run.dir=<dir>") from None
    try:
        if not _try_lock(handle):
            raise _in_use(run_dir, path)
        if not resuming:
            _refuse_if_it_holds_a_run(run_dir)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def refuse_occupied_run_dir(run_dir: str | None, resuming: bool) -> None:
    """Before Hydra writes ``.hydra/`` into ``run_dir`` (given on the command line): the
    refusals of :func:`run_directory`, without taking the lock."""
    if not run_dir or not os.path.isdir(run_dir) or _rank() > 0:  # a DDP rank joins rank 0's run
        return
    path = os.path.join(run_dir, LOCK_NAME)
    if os.path.exists(path):
        with open(path, "a+") as handle:
            if not _try_lock(handle):
                raise _in_use(run_dir, path)
    if not resuming:
        _refuse_if_it_holds_a_run(run_dir)
