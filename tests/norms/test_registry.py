"""spectral_gan/norms/registry.py: a method is one file plus one YAML, registered on import (a toy method from outside the package)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torch.nn.utils import parametrize

from spectral_gan.errors import ConfigError
from spectral_gan.norms import FEATURE_NORMS, WEIGHT_NORMS, generator_weight_norms, mixes_batch
from spectral_gan.training.run import train


RING = ["data=ring", "generator=mlp", "discriminator=mlp", "batch_size=32",
        "discriminator.hidden=16", "generator.hidden=16"]


TOY_YAML = """\
# A user's normalization: the module registers it on import.
defaults:
  - none
  - _self_
module: tests.toy_norm
weight: frobenius
target: 1.0
"""


@pytest.fixture
def toy_config(tmp_path: Path):
    """A config dir holding norm/toy.yaml, as a Hydra search-path override; the toy method is
    unregistered afterwards, so other tests see the built-in methods only."""
    sys.modules.pop("tests.toy_norm", None)  # whatever an earlier test imported
    WEIGHT_NORMS.pop("frobenius", None)
    saved = dict(WEIGHT_NORMS), dict(FEATURE_NORMS)
    (tmp_path / "conf" / "norm").mkdir(parents=True)
    (tmp_path / "conf" / "norm" / "toy.yaml").write_text(TOY_YAML)
    yield f"hydra.searchpath=[file://{tmp_path / 'conf'}]"
    for table, before in zip((WEIGHT_NORMS, FEATURE_NORMS), saved):
        table.clear()
        table.update(before)
    sys.modules.pop("tests.toy_norm", None)


def test_toy_norm_is_not_registered_until_its_module_is_named(toy_config):
    assert "frobenius" not in WEIGHT_NORMS and "tests.toy_norm" not in sys.modules


def test_toy_norm_composes_builds_and_trains(cfg_factory, tmp_path, toy_config):
    cfg = cfg_factory(*RING, toy_config, "norm=toy", "norm.target=2.0", "steps=2")
    hook = instantiate(cfg.norm)
    assert hook.weight == "frobenius" and hook.options == {"target": 2.0}
    d = instantiate(cfg.discriminator, shape=(2,), norm=hook)
    normalized = [m for m in d.modules() if parametrize.is_parametrized(m, "weight")]
    assert normalized and len(normalized) == len(hook.wrapped)
    for m in normalized:
        assert type(m.parametrizations.weight[0]).__name__ == "FrobeniusNorm"
        assert torch.linalg.norm(m.weight).item() == pytest.approx(2.0, rel=1e-5)
    assert not mixes_batch(d)  # declared by default: a per-sample method
    assert "frobenius" in generator_weight_norms()  # declared generator_ok
    result = train(cfg)
    assert result["gen_step"] == 2
    # logged like a built-in method (sigma/<layer> of each raw weight) and compared
    from spectral_gan.cli.compare import main as compare
    from tests.test_train import scalars
    logged = scalars(str(tmp_path))
    assert len([t for t in logged if t.startswith("sigma/")]) >= len(normalized)
    assert compare([str(tmp_path)]) == 0 and (tmp_path / "comparison.csv").is_file()


def test_toy_norm_refuses_options_it_does_not_declare(cfg_factory, toy_config):
    cfg = cfg_factory(*RING, toy_config, "norm=toy", "norm.n_power_iterations=3")
    with pytest.raises(Exception) as info:  # Hydra wraps it; the CLI unwraps it
        instantiate(cfg.norm)
    err = info.value
    while not isinstance(err, ConfigError) and err is not None:
        err = err.__cause__
    assert err is not None, info.value
    assert ("norm.weight=frobenius does not take option 'n_power_iterations'; its options are: "
            "target") in str(err)


def test_unimportable_norm_module_is_a_config_error():
    from spectral_gan.norms import NormHook
    with pytest.raises(ConfigError, match="norm.module='no_such_pkg.norm' could not be imported"):
        NormHook(weight="sn", module="no_such_pkg.norm")


def test_discover_imports_every_module_of_a_package(tmp_path, monkeypatch, toy_config):
    # spectral_gan.norms is found this way: a new file there needs no line in norms/__init__.py
    from spectral_gan.norms.registry import discover, lookup
    pkg = tmp_path / "more_norms"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "halved.py").write_text(
        "from spectral_gan.norms import register_feature_norm\n"
        "from torch import nn\n"
        "@register_feature_norm('halved', options=('factor',))\n"
        "def halved(num_features, dims, factor=0.5):\n"
        "    return nn.Identity()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    discover("more_norms")
    assert lookup("feature", "halved").options == ("factor",)
    from spectral_gan.norms import NormHook
    hook = NormHook(weight="sn", feature="halved", factor=0.25, n_power_iterations=2)
    assert hook.feature_options == {"factor": 0.25} and hook.options == {"n_power_iterations": 2}
    monkeypatch.delitem(sys.modules, "more_norms.halved")
    monkeypatch.delitem(sys.modules, "more_norms")
