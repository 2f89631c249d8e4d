"""Every command's --help (issue 35): it says what the command takes, nothing it does not, and loads
neither torch nor Lightning (their import is what made --help take 10-16 s; the time itself is
measured by benchmarks/cli_help.py, not asserted here)."""
from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO

SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
PROBE = """
import sys
module, function = sys.argv[1].split(":")
sys.argv = [sys.argv[2], "--help"]
import importlib
try:
    getattr(importlib.import_module(module), function)()
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
heavy = sorted(m for m in ("torch", "pytorch_lightning", "torchvision", "matplotlib") if m in sys.modules)
print("HEAVY:", ",".join(heavy))
"""


def help_of(script: str) -> tuple[str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, SCRIPTS[script], script],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    text, _, heavy = proc.stdout.rpartition("HEAVY:")
    return text, [m for m in heavy.strip().split(",") if m]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_loads_no_heavy_library(script):
    text, heavy = help_of(script)
    assert script in text  # the help names its own command
    assert heavy == [], f"{script} --help imported {heavy}"


def test_train_help_lists_the_groups_not_the_whole_config():
    text, _ = help_of("spectral-gan-train")
    assert "norm: " in text and "experiment: " in text and "-m norm=none,sn,bsn,msn,osn,gp,bn" in text
    assert "lipschitz_iterations" not in text  # a deep setting: --cfg job shows those
    assert len(text.splitlines()) <= 50


@pytest.mark.parametrize("script", ["spectral-gan-sample", "spectral-gan-eval"])
def test_checkpoint_commands_list_only_their_settings(script):
    text, _ = help_of(script)
    assert "ckpt_path" in text and "trust_checkpoint" in text
    for training_group in ("norm:", "generator:", "discriminator:", "loss:", "sn_setting:"):
        assert training_group not in text
