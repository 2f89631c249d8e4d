"""Shared fixtures: a compose()-based config factory and fast training overrides."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import spectral_gan  # noqa: F401  (registers resolvers)
from spectral_gan.cli.train import compose_train_config

REPO = Path(__file__).resolve().parents[1]

# Small, quiet settings for training tests on 2 CPU cores: configs/debug/quiet.yaml (no progress
# bar, model summary or config tree; evaluation at the end only), fp32, logging, samples and
# checkpoints at every step or two, a small evaluation.
FAST = [
    "debug=quiet",
    "trainer.accelerator=cpu",
    # fp32 whatever the CPU: the default experiment (which a bare command line composes) takes
    # bf16-mixed on CPUs with native bf16, and CI's machine may or may not have it
    "trainer.precision=32-true",
    "log_every=1",
    "sample_every=2",
    "checkpoint_every=2",
    "eval.num_samples=300",
    "eval.batch_size=100",
    "eval.cache_dir=null",
]

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def cfg_factory(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose(train, overrides) with the run directory in tmp_path."""

    def make(*overrides: str, fast: bool = True, run_dir: Path | None = None) -> DictConfig:
        return compose_train_config((FAST if fast else []) + list(overrides), str(run_dir or tmp_path))

    yield make
    GlobalHydra.instance().clear()


def run_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run spectral-gan-train as a user would, outputs under cwd; no config tree printed unless
    the arguments ask for one (extras.print_config=true)."""
    env = dict(os.environ, SPECTRAL_GAN_OUTPUTS=str(cwd / "outputs"), PYTHONWARNINGS="ignore")
    if not any(a.startswith("extras.print_config=") for a in args):
        args = (*args, "extras.print_config=false")
    return subprocess.run([sys.executable, "-m", "spectral_gan.cli.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def crash_mid_write(checkpoint, filepath) -> None:
    """Stands in for torch's save: writes half a file, then fails like a full disk."""
    with open(filepath, "wb") as f:
        f.write(b"half a checkpoint")
    raise OSError("disk full")
