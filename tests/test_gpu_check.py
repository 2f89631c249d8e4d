"""`make gpu-check` (scripts/gpu_check.py) and the GPU tests' settings, checked without a GPU."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from tests.test_gpu import DDP, GPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1 and "no CUDA GPU" in proc.stdout  # one sentence
    assert not any(tmp_path.iterdir())  # nothing ran


@pytest.mark.parametrize("extra", [[], ["trainer.precision=16-mixed"], ["trainer.precision=bf16-mixed"],
                                   ["norm=gp", "trainer.precision=16-mixed"], ["speed.compile=true"],
                                   ["speed.joint_d_pass=true"]])
def test_the_gpu_tests_settings_compose(cfg_factory, extra):
    cfg = cfg_factory(*GPU, *extra, fast=False)
    assert cfg.trainer.accelerator == "gpu" and cfg.eval is None and cfg.steps == 4
    cfg = cfg_factory(*DDP, "trainer.devices=2", fast=False)
    assert cfg.trainer.strategy.startswith("ddp") and cfg.trainer.accelerator == "gpu"
