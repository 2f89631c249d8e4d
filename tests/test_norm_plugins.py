"""A normalization is one Python file plus one YAML: registered from a test module outside the
package, found through the YAML's ``module:`` key, trained through the normal config path."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torch import nn
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


def test_cli_refuses_an_option_the_method_does_not_take(tmp_path):
    from tests.conftest import run_cli
    proc = run_cli("data=ring", "generator=mlp", "discriminator=mlp", "norm=sn", "norm.scale=2",
                   "trainer=cpu", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert ("norm.weight=sn does not take option 'scale'; its options are: n_power_iterations, eps"
            in proc.stderr) and "Traceback" not in proc.stderr


# --- the reporting contract (spectral_gan.norms.monitor's docstring): what a plugin states, and
# the defaults for what it does not

class _Halve(nn.Module):
    """A plugin parametrization with no ``raw_sigmas``: W -> W / 2, plus one diagnostic."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight / 2

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return {"toy_state": torch.tensor(3.0)}


class _Wrap(nn.Module):
    """A plugin that wraps its layer (as MSN does), optionally stating its constant."""

    def __init__(self, layer: nn.Module, states_bound: bool) -> None:
        super().__init__()
        self.inner = layer
        if states_bound:
            self.lipschitz_bound = lambda k: k(self.inner) * 3.0

    @property
    def wrapped(self) -> nn.Module:
        return self.inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 3.0


def _named(layer: nn.Module, name: str) -> nn.Module:
    layer.norm_name = name
    return layer


def test_a_plugin_without_estimates_logs_the_raw_sigma_and_its_own_diagnostics():
    from spectral_gan.norms.monitor import spectral_report

    torch.manual_seed(0)
    layer = _named(nn.Linear(4, 3), "fc0")
    raw = layer.weight.detach().clone()
    parametrize.register_parametrization(layer, "weight", _Halve())
    report = spectral_report(nn.Sequential(layer))
    exact_raw = torch.linalg.matrix_norm(raw, ord=2)
    assert report["sigma/fc0"].item() == pytest.approx(exact_raw.item(), rel=1e-5)
    assert report["sigma/fc0"].item() != pytest.approx(exact_raw.item() / 2, rel=1e-3)
    assert report["toy_state/fc0"].item() == 3.0


@pytest.mark.parametrize("states_bound", [True, False])
def test_a_wrapping_plugin_gets_drift_and_a_bound_only_when_it_states_one(states_bound):
    from spectral_gan.norms.lipschitz import LayerConstants
    from spectral_gan.norms.monitor import activation_drift

    torch.manual_seed(0)
    fc0, out = _named(nn.Linear(2, 4), "fc0"), _named(nn.Linear(4, 1), "out")
    out.norm_output = True
    wrapper = _Wrap(fc0, states_bound)
    model = nn.Sequential(wrapper, nn.ReLU(), out)
    x = torch.randn(8, 2)
    drift = activation_drift(model, [x])
    expected = (fc0(x) * 3.0).mean(0).norm() / 2  # rms over 4 channels of the wrapper's output
    assert drift["drift/fc0"].item() == pytest.approx(expected.item(), rel=1e-5)
    k = LayerConstants()
    bound = k(wrapper)
    if states_bound:
        assert bound.item() == pytest.approx(3.0 * torch.linalg.matrix_norm(fc0.weight, ord=2).item(),
                                             rel=1e-5)
    else:
        assert torch.isnan(bound)


def test_monitor_and_lipschitz_name_no_method():
    import ast

    import spectral_gan.norms.lipschitz as lipschitz
    import spectral_gan.norms.monitor as monitor
    from spectral_gan.norms.registry import all_specs

    methods = {spec.name for spec in all_specs()}
    for module in (monitor, lipschitz):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {m for m in imported if m and m.rsplit(".", 1)[-1] in
                    {"mean", "optional", "bidirectional", "spectral_norm"}}, module.__name__
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        classes = {"MeanSpectralNorm", "MeanCenter", "OptionalSpectralNorm", "SpectralNorm",
                   "BidirectionalSpectralNorm"}
        assert not names & classes, (module.__name__, names & classes)
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                   and isinstance(n.value, str)}
        assert not strings & methods, (module.__name__, strings & methods)


def test_cli_refuses_another_methods_option_in_one_sentence_not_hydras_struct_error(tmp_path):
    from tests.conftest import run_cli
    proc = run_cli("data=ring", "generator=mlp", "discriminator=mlp", "norm=sn", "norm.target=2",
                   "norm.scale=1.0", "trainer=cpu", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert ("norm.weight=sn does not take options 'scale', 'target'" in proc.stderr
            or "norm.weight=sn does not take options 'target', 'scale'" in proc.stderr), proc.stderr
    assert "not in struct" not in proc.stderr and "Traceback" not in proc.stderr
