"""One run per run directory (spectral_gan.runs.directory; issue 34, item 2): a lock held for a
run's life, no fresh run over a finished one, and the refusal before Hydra writes anything."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from spectral_gan.errors import ConfigError
from spectral_gan.runs.directory import LOCK_NAME, holds_run, run_directory
from spectral_gan.training.run import train
from tests.conftest import run_cli
from tests.test_train import RING

HOLD = """
import sys, time
from spectral_gan.runs.directory import run_directory
with run_directory(sys.argv[1], resuming=False):
    print("holding", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def held(tmp_path):
    """Another process holding tmp_path/run's lock, as a running job would."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    yield run
    proc.kill()
    proc.wait()


def test_a_second_run_into_a_locked_directory_is_refused_and_writes_nothing(cfg_factory, held):
    cfg = cfg_factory(*RING, "steps=2", run_dir=held)
    with pytest.raises(ConfigError, match=r"run directory .* is in use by another run \(process \d+\)"):
        train(cfg)
    assert sorted(p.name for p in held.iterdir()) == [LOCK_NAME]


def test_the_lock_goes_with_its_holder(tmp_path):
    run = tmp_path / "run"
    with run_directory(str(run), resuming=False):
        assert (run / LOCK_NAME).read_text().isdigit()
    with run_directory(str(run), resuming=False):  # released: taken again
        pass


def test_a_fresh_run_over_a_finished_one_is_refused_and_a_resume_is_not(cfg_factory, tmp_path):
    run = tmp_path / "run"
    train(cfg_factory(*RING, "steps=2", run_dir=run))
    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    assert holds_run(str(run))
    with pytest.raises(ConfigError, match="already holds a run .*ckpt_path=auto"):
        train(cfg_factory(*RING, "steps=1", run_dir=run))
    assert last.read_bytes() == before
    result = train(cfg_factory(*RING, "steps=3", "ckpt_path=auto", run_dir=run))
    assert result["gen_step"] == 3


def test_the_cli_refuses_an_occupied_run_dir_before_hydra_writes_into_it(tmp_path):
    run = tmp_path / "run"
    first = run_cli(*RING, "steps=2", "trainer=cpu", f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    saved = (run / ".hydra" / "overrides.yaml").read_text()
    second = run_cli(*RING, "steps=1", "seed=5", "trainer=cpu", f"hydra.run.dir={run}", cwd=tmp_path)
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert "already holds a run" in second.stderr
    assert (run / ".hydra" / "overrides.yaml").read_text() == saved
    assert "seed=5" not in yaml.safe_load(saved)
