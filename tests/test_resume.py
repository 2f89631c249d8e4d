"""Issue #15: a resume continues the same run, last.ckpt is always the newest state, and a
signal, a failed write or an overflow loses nothing it need not."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import nn

from spectral_gan.training.callbacks import AtomicCheckpointIO
from spectral_gan.data import ImageFolderDataModule
from spectral_gan.data.batches import ResumableSampler
from spectral_gan.training.divergence import DivergenceGuard, DivergenceSettings
from spectral_gan.errors import ConfigError, RunEnvironmentError
from spectral_gan.metrics.registry import higher_is_better
from spectral_gan.training.gan import GAN
from spectral_gan.training.run import train
from tests.conftest import crash_mid_write, REPO
from tests.test_train import RING, scalars


def step_of(path) -> int:
    return torch.load(path, weights_only=True, mmap=True)["global_step"]


# -- last.ckpt ----------------------------------------------------------------------------------

def test_last_ckpt_stays_the_newest_after_a_resume_and_auto_finds_it(cfg_factory, tmp_path):
    train(cfg_factory(*RING, "steps=4", "checkpoint_every=2"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    # Another checkpoint_every: Lightning does not restore the callback's state, which made it
    # write last-v1.ckpt beside a stale last.ckpt.
    resumed = train(cfg_factory(*RING, "steps=6", "checkpoint_every=3", f"ckpt_path={ckpt}"))
    assert not list((tmp_path / "checkpoints").glob("last-v*.ckpt"))
    assert resumed["checkpoint"] == str(ckpt) and step_of(ckpt) == 6
    again = train(cfg_factory(*RING, "steps=7", "checkpoint_every=3", "ckpt_path=auto"))
    assert again["gen_step"] == 7 and step_of(ckpt) == 7
    assert [s for s, _ in scalars(str(tmp_path))["loss/d"]][-3:] == [5, 6, 7]


def test_last_ckpt_is_saved_before_each_evaluation_and_resumes(cfg_factory, tmp_path, monkeypatch):
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    seen: list[int] = []
    evaluate = GAN.run_evaluation

    def recording(self, step):
        seen.append(step_of(ckpt))  # what a kill during this evaluation would leave
        os.replace(ckpt, tmp_path / f"before_eval_{step}.ckpt")  # the end-of-run save follows
        return evaluate(self, step)

    monkeypatch.setattr(GAN, "run_evaluation", recording)
    train(cfg_factory(*RING, "steps=3", "eval.every=2", "checkpoint_every=100"))
    assert seen == [1, 2]  # one step lost, not 100
    monkeypatch.setattr(GAN, "run_evaluation", evaluate)
    resumed = train(cfg_factory(*RING, "steps=4", "eval.every=2", "checkpoint_every=100",
                                f"ckpt_path={tmp_path / 'before_eval_2.ckpt'}",
                                run_dir=tmp_path / "resumed"))
    assert resumed["gen_step"] == 4  # steps 2 to 4 trained again, from the state after step 1
    assert [s for s, _ in scalars(str(tmp_path / "resumed"))["loss/d"]] == [2, 3, 4]


# -- what a resume compares ---------------------------------------------------------------------

@pytest.mark.parametrize("change,message", [
    ("n_dis=2", "n_dis=1 in the checkpoint but 2 in the config"),
    ("batch_size=16", "batch_size=32 in the checkpoint but 16 in the config"),
    ("ema.decay=0", "the checkpoint has EMA generator but ema.decay=0"),
])
def test_resume_refuses_a_change_of_step_batch_or_ema(cfg_factory, tmp_path, change, message):
    train(cfg_factory(*RING, "steps=2"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=message):
        train(cfg_factory(*RING, "steps=4", change, f"ckpt_path={ckpt}"))


def test_resume_refusal_is_one_sentence_and_exit_2(cfg_factory, tmp_path):
    train(cfg_factory(*RING, "steps=2"))
    proc = subprocess.run([sys.executable, "-m", "spectral_gan.cli.train", *RING, "steps=4", "n_dis=3",
                           f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore",
                                   SPECTRAL_GAN_OUTPUTS=str(tmp_path / "outputs")))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "n_dis=1 in the checkpoint but 3 in the config" in proc.stderr


def test_keys_added_to_the_config_after_the_checkpoint_do_not_block_resume(cfg_factory, tmp_path):
    train(cfg_factory(*RING, "steps=2"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    del state["spectral_gan_config"]["discriminator"]["hidden"]  # as if `hidden` were new
    del state["spectral_gan_config"]["norm"]["weight"]
    torch.save(state, ckpt)
    assert train(cfg_factory(*RING, "steps=3", f"ckpt_path={ckpt}"))["gen_step"] == 3


def test_resume_from_an_older_checkpoint_keeps_the_better_best_ckpt(cfg_factory, tmp_path):
    train(cfg_factory(*RING, "steps=4", "eval.every=1", "checkpoint_every=2"))
    ckpts = tmp_path / "checkpoints"
    best = torch.load(ckpts / "best.ckpt", weights_only=True)
    primary = next(k for k in scalars(str(tmp_path)) if k.startswith("metrics/best_"))
    primary = primary.replace("metrics/best_", "metrics/")
    unbeatable = 1e9 if higher_is_better(primary) else -1e9
    worst = -math.inf if higher_is_better(primary) else math.inf

    def set_best(ckpt, value) -> None:  # the module's tracked best and BestCheckpoint's score
        ckpt["best_metric"] = value
        (key,) = [k for k in ckpt["callbacks"] if k.startswith("BestCheckpoint")]
        ckpt["callbacks"][key]["best_model_score"] = torch.tensor(value)
        ckpt["callbacks"][key]["best_k_models"] = {}

    set_best(best, unbeatable)
    torch.save(best, ckpts / "best.ckpt")
    old = torch.load(ckpts / "gen_step_000002.ckpt", weights_only=True)
    set_best(old, worst)  # "none yet": any evaluation after the resume would improve
    torch.save(old, ckpts / "gen_step_000002.ckpt")
    resumed = train(cfg_factory(*RING, "steps=4", "eval.every=1",
                                f"ckpt_path={ckpts / 'gen_step_000002.ckpt'}"))
    assert resumed["module"].best_metric == unbeatable
    kept = torch.load(ckpts / "best.ckpt", weights_only=True)
    assert kept["best_metric"] == unbeatable and kept["global_step"] == best["global_step"]


# -- data position ------------------------------------------------------------------------------

def test_image_folder_resumes_at_the_exact_batch(tmp_path):
    for i in range(7):
        Image.new("L", (8, 8), color=30 * i).save(tmp_path / f"{i}.png")

    def batches(resume_step: int, n: int) -> list[torch.Tensor]:
        dm = ImageFolderDataModule(root=str(tmp_path), image_size=8, channels=1, batch_size=2,
                                   batches_per_step=2, num_workers=0)
        dm.check_available()
        dm.resume_step = resume_step
        it = iter(dm.train_dataloader())
        return [next(it) for _ in range(n)]

    straight = batches(0, 6)  # 24 samples: more than three epochs of 7
    for k in (1, 2, 5):
        assert all(torch.equal(a, b) for a, b in zip(batches(k, 6 - k), straight[k:])), k


def test_resumable_sampler_splits_each_epoch_across_ranks():
    data = list(range(10))
    r0, r1 = (iter(ResumableSampler(data, 2, rank, seed=3)) for rank in (0, 1))
    first = [next(r0) for _ in range(5)] + [next(r1) for _ in range(5)]
    assert sorted(first) == data  # one epoch, no index twice
    later = iter(ResumableSampler(data, 2, 1, seed=3, skip=7))
    again = iter(ResumableSampler(data, 2, 1, seed=3))
    assert [next(later) for _ in range(6)] == [next(again) for _ in range(13)][7:]


# -- writes, divergence, run directories --------------------------------------------------------

def test_failed_checkpoint_write_leaves_no_temp_file_and_writes_are_fsynced(tmp_path, monkeypatch):
    synced: list[int] = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), fsync(fd)))
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    assert len(synced) == 2  # the file, then its folder

    monkeypatch.setattr("lightning_fabric.plugins.io.torch_io._atomic_save", crash_mid_write)
    with pytest.raises(RunEnvironmentError, match="disk full"):
        io.save_checkpoint({"step": 2}, tmp_path / "last.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True) == {"step": 1}


class _Host(nn.Module):
    """What the divergence guard needs from the LightningModule."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((3,), weight))
        self.saved: list[str] = []
        self.trainer = type("T", (), {"save_checkpoint": lambda _, p, **kw: self.saved.append(p),
                                      "should_stop": False, "precision_plugin": None})()

    def log_scalars(self, metrics, step) -> None:
        pass


@pytest.mark.parametrize("weight,saved", [(1.0, True), (math.inf, False)])
def test_diverged_ckpt_is_never_written_with_non_finite_weights(weight, saved):
    host = _Host(weight)
    guard = DivergenceGuard(DivergenceSettings(check="every_update"), "diverged.ckpt")
    guard.setup(host, [], torch.device("cpu"))
    assert not guard.allow(torch.tensor(float("nan")), object(), "discriminator loss", 3)
    assert host.trainer.should_stop and host.saved == (["diverged.ckpt"] if saved else [])
    assert guard.diverged["checkpoint"] == ("diverged.ckpt" if saved else None)
    if not saved:
        assert "weights themselves were already non-finite" in guard.diverged["reason"]


def test_runs_started_in_the_same_second_get_their_own_directory():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import spectral_gan.config.resolvers  # noqa: F401  (the pid resolver)
    from spectral_gan.cli.common import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True)
    GlobalHydra.instance().clear()
    OmegaConf.register_new_resolver("now", lambda fmt: "2024-01-01_00-00-00", replace=True)
    for key in ("run.dir", "sweep.dir"):
        assert OmegaConf.select(cfg.hydra, key).endswith(f"_00-00-00_{os.getpid()}"), key


# -- signals ------------------------------------------------------------------------------------

class _SignalAt(pl.Callback):
    """Sends this process ``signum`` after generator step ``step``."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if pl_module.gen_step == self.step:
            os.kill(os.getpid(), self.signum)


def test_interrupt_chains_the_handler_installed_before_it(cfg_factory, tmp_path):
    calls: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        cfg = cfg_factory(*RING, "steps=50", "checkpoint_every=100",
                          "+callbacks.signal._target_=tests.test_resume._SignalAt",
                          "+callbacks.signal.step=2")
        result = train(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert calls == [signal.SIGTERM]  # the earlier handler still ran
    assert result["interrupted"]["signal"] == "SIGTERM" and result["gen_step"] in (2, 3)
    assert step_of(tmp_path / "checkpoints" / "last.ckpt") == result["gen_step"]
    assert not list((tmp_path / "checkpoints").glob("last-v*.ckpt"))


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_ddp_sigterm_to_one_rank_stops_both_with_one_checkpoint(tmp_path):
    env = dict(os.environ, SPECTRAL_GAN_OUTPUTS=str(tmp_path / "outputs"), PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "spectral_gan.cli.train", "experiment=ring_sn",
                             "trainer=ddp", "trainer.accelerator=cpu", "steps=100000", "log_every=1",
                             "eval.every=0", "checkpoint_every=100000",
                             "callbacks.progress_bar.refresh_rate=0"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    runs = tmp_path / "outputs" / "train" / "runs"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:  # until rank 0 logs steps: both ranks are training
            events = list(runs.glob("*/tb/events.*")) if runs.exists() else []
            if events and events[0].stat().st_size > 4000 and _children(proc.pid):
                break
            time.sleep(0.5)
        rank1 = _children(proc.pid)
        assert rank1, "the DDP child rank did not start"
        os.kill(rank1[0], signal.SIGTERM)  # one rank only: rank 0 never sees the signal
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            for child in _children(proc.pid):
                os.kill(child, signal.SIGKILL)
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Interrupted by SIGTERM" in out
    ckpts = sorted(p.name for p in next(runs.iterdir()).glob("checkpoints/*.ckpt"))
    assert ckpts == ["last.ckpt"]


# -- checkpoints of the optimizer-step count --------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"
# How the two fixtures were written (before 2026-12-05, when global_step counted the optimizer
# steps of both networks): spectral-gan-train with these overrides; step 2 and last.ckpt (step 4).
V1_RUN = ["experiment=ring_sn", "steps=4", "n_dis=2", "checkpoint_every=2", "generator.hidden=16",
          "discriminator.hidden=16"]


def test_a_checkpoint_that_counted_optimizer_steps_resumes_at_its_generator_step(cfg_factory, tmp_path):
    from spectral_gan.checkpoints.load import checkpoint_gen_step

    old = torch.load(FIXTURES / "optimizer_steps_v1_step2.ckpt", weights_only=True)
    assert old["global_step"] == 6 and "step_unit" not in old  # 2 x (n_dis D steps + 1 G step)
    assert checkpoint_gen_step(str(FIXTURES / "optimizer_steps_v1_step2.ckpt")) == 2
    (tmp_path / "checkpoints").mkdir()
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.write_bytes((FIXTURES / "optimizer_steps_v1_step2.ckpt").read_bytes())
    resumed = train(cfg_factory(*V1_RUN, "ckpt_path=auto", fast=False))
    assert resumed["gen_step"] == 4
    assert [s for s, _ in scalars(str(tmp_path))["loss/d"]][-1] == 4  # step 3 and 4 trained, once
    new = torch.load(ckpt, weights_only=True)
    assert new["global_step"] == 4 and new["step_unit"] == "generator"
    # The same two steps the old version trained from there: equal to the bit on the machine that
    # wrote the fixtures, within rounding (a few 1e-8) on another CPU's kernels; one Adam step more
    # or less moves the weights by about the learning rate (2e-4).
    reference = torch.load(FIXTURES / "optimizer_steps_v1_step4.ckpt", weights_only=True)["state_dict"]
    for name, value in reference.items():
        torch.testing.assert_close(new["state_dict"][name], value, rtol=0, atol=1e-6, msg=name)
