"""What a run prints (issue 35): its overrides and run directory, a progress bar, where things are
at the end; not the config tree, Lightning's device lines, the model summary or the speed options
(the whole config is saved in the run directory; extras.print_config=true prints it)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import run_cli



def test_a_20_step_run_of_the_default_prints_under_30_lines(tmp_path):
    # The smoke run the issue counted (242 lines), with a smaller final evaluation to keep it short.
    env = dict(os.environ, SPECTRAL_GAN_OUTPUTS=str(tmp_path / "outputs"))
    proc = subprocess.run([sys.executable, "-m", "spectral_gan.cli.train", "steps=20",
                           "eval.num_samples=300"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    lines = out.splitlines()
    assert len(lines) < 30, out
    assert lines[0] == "Training experiment=mnist5k_sn with steps=20 eval.num_samples=300"
    assert lines[1].startswith(f"Run directory: {tmp_path / 'outputs'}")
    assert "Trained 20 generator steps" in out
    for noise in ("GPU available", "TPU available", "Seed set to", "speed options", "Params",
                  "collapsed", "CONFIG"):
        assert noise not in out, noise
    run_dir = next((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert (run_dir / ".hydra" / "config.yaml").is_file()


@pytest.mark.parametrize("bad,key", [("steps=0", "steps"), ("n_dis=abc", "n_dis"),
                                     ("optimizer.d.lr=-1", "optimizer")])
def test_a_bad_value_is_refused_before_the_run_directory_exists(tmp_path, bad, key):
    proc = run_cli(bad, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and key in proc.stderr
    assert not (tmp_path / "outputs" / "train").exists()
