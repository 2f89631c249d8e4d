"""The GPU path, run for real: `pytest -m gpu` (the first stage of `make gpu-check`).

Each test trains a few generator steps through ``spectral_gan.training.run.train`` (or, for DDP, the
``spectral-gan-train`` command) with ``trainer=gpu`` and checks that it ran on CUDA and logged
finite losses at every step. Without a CUDA GPU every test here is skipped, with the reason; the
default ``make test`` (``-m "not slow"``) collects them and skips them.
"""
from __future__ import annotations

import math
import os

import pytest
import torch

from spectral_gan.training.run import train
from tests.conftest import REPO, run_cli
from tests.test_train import scalars

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU (torch.cuda.is_available() is False); "
                              "run `make gpu-check` on a GPU machine"),
]

STEPS = 4
# The default model (mnist5k, DCGAN G and D with SN, hinge), quiet, logging every step, no
# evaluation: what is checked is the training step on the GPU.
QUIET = ["debug=quiet", f"steps={STEPS}", "log_every=1", "eval=null", "batch_size=32"]
GPU = ["trainer=gpu", *QUIET]
DDP = ["trainer=ddp", "trainer.accelerator=gpu", *QUIET]  # plus trainer.devices


def assert_finite_losses(run_dir: str, steps: int = STEPS) -> None:
    logged = scalars(run_dir)
    for tag in ("loss/d", "loss/g"):
        values = [v for _, v in logged[tag]]
        assert len(values) == steps, (tag, logged[tag])
        assert all(math.isfinite(v) for v in values), (tag, values)


def gpu_run(cfg_factory, tmp_path, *overrides: str) -> dict:
    result = train(cfg_factory(*GPU, *overrides, fast=False))
    assert result["trainer"].strategy.root_device.type == "cuda"
    assert result["gen_step"] == STEPS and not result["module"].diverged
    assert_finite_losses(str(tmp_path))
    return result


def test_trainer_gpu_trains_on_cuda(cfg_factory, tmp_path):
    result = gpu_run(cfg_factory, tmp_path)
    assert result["trainer"].precision == "32-true"


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision(cfg_factory, tmp_path, precision):
    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16 support")
    result = gpu_run(cfg_factory, tmp_path, f"trainer.precision={precision}")
    assert result["trainer"].precision == precision


def test_gradient_penalty_under_fp16(cfg_factory, tmp_path):
    gpu_run(cfg_factory, tmp_path, "norm=gp", "trainer.precision=16-mixed")
    logged = scalars(str(tmp_path))
    penalty = [v for tag, values in logged.items() if tag.startswith("loss/penalty")
               for _, v in values]
    assert len(penalty) == STEPS and all(math.isfinite(v) for v in penalty)


def test_compile(cfg_factory, tmp_path):
    from torch._dynamo.utils import counters

    before = counters["frames"]["ok"]
    result = gpu_run(cfg_factory, tmp_path, "speed.compile=true")
    module = result["module"]
    assert module.G._compiled_call_impl is not None and module.D._compiled_call_impl is not None
    assert counters["frames"]["ok"] > before, "nothing compiled (eager fallback)"


def test_joint_discriminator_pass(cfg_factory, tmp_path):
    result = gpu_run(cfg_factory, tmp_path, "speed.joint_d_pass=true")
    assert result["module"]._joint is True


def test_ddp_on_every_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    devices = torch.cuda.device_count()
    run_dir = tmp_path / "run"
    proc = run_cli(*DDP, f"trainer.devices={devices}",
                   f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GPU available: True (cuda), used: True" in proc.stdout + proc.stderr
    assert f"Trained {STEPS} generator steps" in proc.stdout
    assert_finite_losses(str(run_dir))
