"""Fault injection: each failure mode handled as documented, with nothing lost."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from spectral_gan.training.callbacks import AtomicCheckpointIO
from spectral_gan.data import ImageFolderDataModule
from spectral_gan.errors import ConfigError, DatasetNotFoundError, RunEnvironmentError
from spectral_gan.training.run import TrainingDiverged, train
from tests.conftest import crash_mid_write, run_cli
from tests.test_train import RING, scalars


@pytest.mark.parametrize("check,log_every,global_step", [
    ("every_update", 1, 2),  # stops before step 3's D update: two whole generator steps
    ("deferred", 1, 3),      # step 3's D update skipped on the device, its G update applied
    ("deferred", 4, 4),      # detected at the log step 4, still reported as step 3
])
def test_nan_at_step_stops_saves_and_exits_nonzero(tmp_path, check, log_every, global_step):
    proc = run_cli(*RING, "fault.nan_at_step=3", "steps=10", f"log_every={log_every}",
                   f"divergence.check={check}", "callbacks.progress_bar.refresh_rate=0", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "diverged at generator step 3" in proc.stderr and "diverged.ckpt" in proc.stderr
    assert "Traceback" not in proc.stderr
    run = next((tmp_path / "outputs" / "train" / "runs").iterdir())
    ckpt = torch.load(run / "checkpoints" / "diverged.ckpt", weights_only=True)
    assert ckpt["diverged"]["step"] == 3 and "non-finite discriminator loss" in ckpt["diverged"]["reason"]
    assert ckpt["global_step"] == global_step
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    # The NaN update never reached D: its Adam counted only the finite updates.
    d_steps = {float(s["step"]) for s in ckpt["optimizer_states"][0]["state"].values()}
    assert d_steps == {float(global_step - (check == "deferred"))}
    assert scalars(str(run))["events/diverged"] == [(3, 1.0)]


@pytest.mark.parametrize("check", ["deferred", "every_update"])
def test_skip_mode_skips_a_bounded_number_of_updates(cfg_factory, tmp_path, check, caplog):
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Converting a tensor with requires_grad")
        with caplog.at_level("WARNING", logger="spectral_gan.training.divergence"):
            result = train(cfg_factory(*RING, "fault.nan_at_step=2", "divergence.action=skip",
                                       "steps=4", f"divergence.check={check}"))
    assert result["gen_step"] == 4 and result["module"].skipped_steps == 1
    assert any("non-finite update skipped (1 of at most 10" in r.getMessage() for r in caplog.records)
    assert scalars(str(tmp_path))["events/skipped_step"][0][0] == 2
    with pytest.raises(TrainingDiverged, match="step 2"):
        train(cfg_factory(*RING, "fault.nan_at_step=2", "divergence.action=skip",
                          "divergence.max_skips=0", "steps=4", f"divergence.check={check}",
                          run_dir=tmp_path / "b"))


def test_deferred_check_needs_an_optimizer_that_skips_on_device(cfg_factory, tmp_path):
    fused = train(cfg_factory(*RING, "steps=1", run_dir=tmp_path / "fused"))["module"]
    assert len(fused.guard._deferred) == 2  # fused Adam for D and G: no host sync per update
    plain = train(cfg_factory(*RING, "steps=1", "optimizer.d.fused=false",
                              "optimizer.g.fused=false", run_dir=tmp_path / "plain"))["module"]
    assert plain.guard._deferred == set()  # falls back to the per-update host check
    with pytest.raises(ConfigError, match="divergence.check must be deferred or every_update"):
        train(cfg_factory(*RING, "divergence.check=sometimes", "steps=1"))


def test_resumed_run_reproduces_the_uninterrupted_one(cfg_factory, tmp_path):
    common = [*RING, "trainer.deterministic=true", "norm=sn", "norm.penalty=r1", "seed=5"]
    train(cfg_factory(*common, "steps=6", run_dir=tmp_path / "full"))
    train(cfg_factory(*common, "steps=3", run_dir=tmp_path / "part"))
    resumed = train(cfg_factory(*common, "steps=6",
                                f"ckpt_path={tmp_path / 'part' / 'checkpoints' / 'last.ckpt'}",
                                run_dir=tmp_path / "elsewhere"))
    assert resumed["run_dir"] == str(tmp_path / "part")  # logging continues in the same run
    full, part = scalars(str(tmp_path / "full")), scalars(str(tmp_path / "part"))
    for tag in ("loss/d", "loss/g", "d/real"):
        a = dict(full[tag])
        b = dict(part[tag])
        assert sorted(b) == [1, 2, 3, 4, 5, 6], tag
        for step in (4, 5, 6):
            assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), (tag, step)


def test_sigterm_saves_and_resume_continues(tmp_path):
    env = dict(os.environ, SPECTRAL_GAN_OUTPUTS=str(tmp_path / "outputs"), PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "spectral_gan.cli.train", *RING, "steps=100000",
                             "log_every=1", "callbacks.progress_bar.refresh_rate=0"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    runs = tmp_path / "outputs" / "train" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until training is under way
        events = list(runs.glob("*/tb/events.*")) if runs.exists() else []
        if events and events[0].stat().st_size > 2000:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Interrupted by SIGTERM" in out
    run = next(runs.iterdir())
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    k = state["global_step"]
    assert k >= 1
    resumed = run_cli(*RING, f"steps={k + 3}", "log_every=1", "callbacks.progress_bar.refresh_rate=0",
                      f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Trained {k + 3} generator steps" in resumed.stdout
    steps = [s for s, _ in scalars(str(run))["loss/d"]]
    assert steps[-3:] == [k + 1, k + 2, k + 3]


def test_mismatched_checkpoint_is_refused_naming_the_difference(cfg_factory, tmp_path):
    train(cfg_factory(*RING, "norm=sn", "steps=2"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="norm.weight='sn' in the checkpoint but 'bsn' in the config"):
        train(cfg_factory(*RING, "norm=bsn", "steps=4", f"ckpt_path={ckpt}"))
    with pytest.raises(ConfigError, match="discriminator.hidden=128 in the checkpoint but 64"):
        train(cfg_factory(*RING, "norm=sn", "discriminator.hidden=64", "steps=4", f"ckpt_path={ckpt}"))


def test_corrupt_checkpoint_is_refused_clearly(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    proc = run_cli(*RING, "steps=4", f"ckpt_path={bad}", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "could not be read" in proc.stderr and "Traceback" not in proc.stderr


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    monkeypatch.setattr("lightning_fabric.plugins.io.torch_io._atomic_save", crash_mid_write)
    with pytest.raises(RunEnvironmentError, match=r"cannot write the checkpoint .*last.ckpt "
                                                  r"\(disk full\); the previous checkpoint there is intact"):
        io.save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}  # the previous one, whole


def test_broken_images_are_skipped_or_fail_by_config(tmp_path):
    for i in range(4):
        Image.new("RGB", (20, 20), color=(50 * i, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=16, batch_size=2)
    with pytest.warns(UserWarning, match="skipping 1 unreadable"):
        dm.check_available()
    assert len(dm._paths) == 4 and dm.unreadable[0].endswith("broken.jpg")
    strict = ImageFolderDataModule(root=str(tmp_path), image_size=16, batch_size=2, on_bad_image="fail")
    with pytest.raises(DatasetNotFoundError, match="1 unreadable image.*data.on_bad_image=skip"):
        strict.check_available()


def test_risky_combination_warns(cfg_factory):
    with pytest.warns(UserWarning, match="loss=wgan without Lipschitz control"):
        train(cfg_factory(*RING, "loss=wgan", "norm=none", "steps=1"))


def test_unknown_option_is_one_sentence(tmp_path):
    proc = run_cli("nonsense_option=3", cwd=tmp_path, timeout=120)
    assert proc.returncode != 0 and "nonsense_option" in proc.stderr and "Traceback" not in proc.stderr


def test_in_a_multirun_a_diverged_job_does_not_stop_the_others(tmp_path):
    proc = run_cli("-m", *RING, "fault.nan_at_step=2,null", "steps=3",
                   "callbacks.progress_bar.refresh_rate=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "diverged at generator step 2" in proc.stderr
    assert "Trained 3 generator steps" in proc.stdout
    jobs = sorted((tmp_path / "outputs" / "train" / "multiruns").glob("*/*/checkpoints"))
    assert len(jobs) == 2 and (jobs[0] / "diverged.ckpt").exists() and (jobs[1] / "last.ckpt").exists()


def test_ckpt_path_auto_resumes_only_when_the_run_has_a_checkpoint(cfg_factory, tmp_path):
    first = train(cfg_factory(*RING, "steps=2", "ckpt_path=auto"))
    assert first["gen_step"] == 2
    second = train(cfg_factory(*RING, "steps=4", "ckpt_path=auto"))
    assert second["gen_step"] == 4
    assert [s for s, _ in scalars(str(tmp_path))["loss/d"]][-2:] == [3, 4]


def test_unknown_divergence_action_is_refused(cfg_factory):
    with pytest.raises(ConfigError, match="divergence.action must be stop or skip"):
        train(cfg_factory(*RING, "divergence.action=ignore", "steps=1"))


def test_sigterm_stops_a_sequential_sweep_and_its_rerun_resumes_and_goes_on(tmp_path):
    """Issue 34, item 6: job 0 saves and the process exits 143 without starting job 1; the same
    command again resumes job 0 from its checkpoint and then runs job 1."""
    from spectral_gan.runs.status import read_status

    sweep = tmp_path / "sweep"
    args = ["-m", *RING, "steps=150", "seed=1,2", "eval.every=0", "log_every=1",
            "callbacks.progress_bar.refresh_rate=0", "hydra/launcher=basic",
            f"hydra.sweep.dir={sweep}", "extras.print_config=false"]
    env = dict(os.environ, SPECTRAL_GAN_OUTPUTS=str(tmp_path / "outputs"), PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "spectral_gan.cli.train", *args], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # job 0 under way
        events = list(sweep.glob("0_*/tb/events.*")) if sweep.exists() else []
        if events and events[0].stat().st_size > 2000:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name[:2] for p in jobs] == ["0_"]  # job 1 never started
    assert read_status(str(jobs[0]))["status"] == "interrupted"
    stopped_at = torch.load(jobs[0] / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < stopped_at < 150
    again = run_cli(*args, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("Trained 150 generator steps") == 2
    assert "Resuming" in again.stdout + again.stderr
    assert [read_status(str(p))["status"] for p in sorted(q for q in sweep.iterdir() if q.is_dir())] \
        == ["finished", "finished"]


def test_signal_handlers_are_restored_after_each_run(cfg_factory, tmp_path):
    """Issue 34, item 6: in a long-lived process (a sequential sweep, the benchmark) each
    Trainer chained onto the last one's stale handler; `make bench` printed 35 'Received SIGTERM'."""
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    for i in range(2):
        train(cfg_factory(*RING, "steps=1", run_dir=tmp_path / str(i)))
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
