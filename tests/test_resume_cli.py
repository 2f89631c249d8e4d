"""Issue #16: ``spectral-gan-train ckpt_path=<ckpt>`` alone resumes the run in its own directory,
every checkpoint name the product writes works unquoted as ``ckpt_path=``, and a run's output
holds nothing a user cannot act on."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from spectral_gan.cli.train import compose_train_config
from spectral_gan.errors import ConfigError
from spectral_gan.checkpoints.resume_command import resume_overrides
from spectral_gan.training.settings import RunPaths
from spectral_gan.training.run import train
from tests.conftest import REPO
from tests.test_train import RING

# What a run printed before issue #16 and must not print any more.
NOISE = ("weights_only", "💡", "litlogger", "litmodels", "LeafSpec", "_pytree", "`Trainer.fit` stopped",
         "max_steps=", "Epoch ", "Restoring states", "Restored all states", "exists and is not empty",
         "InceptionScore", "manual optimization", "Traceback")


def run_train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """spectral-gan-train as a user runs it: warnings not silenced by the environment."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(PYTHONPATH=str(REPO), SPECTRAL_GAN_OUTPUTS=str(cwd / "outputs"))
    return subprocess.run([sys.executable, "-m", "spectral_gan.cli.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_quiet(proc: subprocess.CompletedProcess) -> None:
    output = proc.stdout + proc.stderr
    assert not [n for n in NOISE if n in output], output


def test_every_checkpoint_name_works_unquoted_as_ckpt_path(cfg_factory, tmp_path):
    train(cfg_factory(*RING, "steps=2", "eval.every=1", "checkpoint_every=1"))
    ckpts = tmp_path / "checkpoints"
    names = {p.name for p in ckpts.glob("*.ckpt")}
    assert {"gen_step_000001.ckpt", "gen_step_000002.ckpt", "last.ckpt", "best.ckpt"} <= names
    diverged = Path(RunPaths(str(tmp_path)).diverged_checkpoint)  # the name a divergence writes
    shutil.copy(ckpts / "last.ckpt", diverged)
    for path in [*(ckpts / n for n in sorted(names)), diverged]:
        override = f"ckpt_path={path}"
        OverridesParser.create().parse_overrides([override])  # Hydra's grammar, unquoted
        cfg = compose_train_config([override])
        assert cfg.ckpt_path == str(path)
        assert cfg.hydra.run.dir == str(tmp_path) and cfg.hydra.output_subdir == ".hydra/resume_1"


def test_old_names_and_sweep_folders_are_quoted_and_the_newest_invocation_is_the_base(tmp_path):
    run = tmp_path / "0_n_dis=2,steps=4"   # a sweep job's folder
    (run / "checkpoints").mkdir(parents=True)
    old = run / "checkpoints" / "gen_step=000100.ckpt"  # the periodic name before issue #16
    old.touch()
    (run / ".hydra" / "resume_1").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["data=ring", "steps=4", "n_dis=2"]))
    (run / ".hydra" / "resume_1" / "overrides.yaml").write_text(
        yaml.safe_dump(["data=ring", "n_dis=2", "optimizer.g.lr=0.001", f"ckpt_path={old}", "steps=6"]))
    cfg = compose_train_config([f"ckpt_path={old}", "steps=8"])
    assert cfg.ckpt_path == str(old) and cfg.hydra.run.dir == str(run)
    assert cfg.data._target_.endswith("RingDataModule") and cfg.n_dis == 2 and cfg.optimizer.g.lr == 0.001 and cfg.steps == 8
    assert cfg.hydra.output_subdir == ".hydra/resume_2"
    with pytest.raises(ConfigError, match="continues in the checkpoint's run directory"):
        resume_overrides([f"ckpt_path={old}", f"hydra.run.dir={tmp_path / 'elsewhere'}"])


def test_a_run_is_quiet_speaks_in_generator_steps_and_resumes_by_ckpt_path_alone(tmp_path):
    run = tmp_path / "run"
    quiet = ["trainer.accelerator=cpu", "trainer.enable_model_summary=false"]
    first = run_train(*RING, *quiet, "steps=2", "checkpoint_every=1", "eval.every=1",
                      f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert_quiet(first)
    assert "gen step 2/2" in first.stdout and "Trained 2 generator steps" in first.stdout

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    last = run / "checkpoints" / "last.ckpt"
    resumed = run_train(f"ckpt_path={last}", "steps=3", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert_quiet(resumed)
    assert "gen step 3/3" in resumed.stdout and "Trained 3 generator steps" in resumed.stdout
    assert f"Resuming {run} at generator step 2 of 3" in resumed.stdout + resumed.stderr
    assert not (elsewhere / "outputs" / "train").exists()  # no second run directory
    original = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert "steps=2" in original and not any(o.startswith("ckpt_path") for o in original)
    again = yaml.safe_load((run / ".hydra" / "resume_1" / "overrides.yaml").read_text())
    assert "data=ring" in again and "steps=3" in again and "steps=2" not in again
    assert torch.load(last, weights_only=True, mmap=True)["global_step"] == 3
    assert (run / "train.log").read_text().count("Resuming") == 1  # the run's log continues

    refused = run_train(f"ckpt_path={last}", "norm=none", cwd=elsewhere)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    error = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "a resume cannot change" in error[0]


# --- a run directory is data, not code (issue 34, item 1) ---------------------------------------

HOSTILE = [
    ["loss._target_=tempfile.mkdtemp", "+loss.dir={where}", "+loss.prefix=pwned"],
    ["generator={{_target_:tempfile.mkdtemp,dir:{where}}}"],
    ["+data.extra=[1,{{_args_:[x]}}]"],
    ["norm.module=tests.toy_norm"],
    ["optimizer.g.lr=${{oc.env:HOME}}"],
    ["+callbacks.evil._target_=tempfile.mkdtemp"],
]


@pytest.mark.parametrize("saved", HOSTILE)
@pytest.mark.parametrize("where", ["overrides.yaml", "resume_1/overrides.yaml"])
def test_a_resume_refuses_saved_overrides_that_name_code(tmp_path, saved, where):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.touch()
    target = tmp_path / "created_by_an_override"
    target.mkdir()
    (run / ".hydra" / where).parent.mkdir(parents=True, exist_ok=True)
    (run / ".hydra" / where).write_text(
        yaml.safe_dump(["data=ring", *[o.format(where=target) for o in saved]]))
    with pytest.raises(ConfigError, match="could run code .*nothing was run; pass trust_checkpoint=true"):
        resume_overrides([f"ckpt_path={ckpt}"])
    assert list(target.iterdir()) == []
    trusted = resume_overrides([f"ckpt_path={ckpt}", "trust_checkpoint=true"])
    assert "trust_checkpoint=true" in trusted and "data=ring" in trusted


def test_a_resume_of_a_hostile_run_dir_is_one_sentence_and_creates_nothing(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").touch()
    target = tmp_path / "target"
    target.mkdir()
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
        ["loss._target_=tempfile.mkdtemp", f"+loss.dir={target}", "+loss.prefix=pwned"]))
    proc = run_train(f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "could run code" in proc.stderr
    assert list(target.iterdir()) == []


def test_auto_into_a_named_run_dir_keeps_the_original_hydra_config(tmp_path):
    run = tmp_path / "run"
    assert resume_overrides(["ckpt_path=auto", f"hydra.run.dir={run}"]) == \
        ["ckpt_path=auto", f"hydra.run.dir={run}"]  # nothing there yet: a fresh start
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").touch()
    (run / ".hydra" / "resume_1").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["data=ring"]))
    args = resume_overrides(["ckpt_path=auto", f"hydra.run.dir={run}"])
    assert args[-1] == "hydra.output_subdir='.hydra/resume_2'"
