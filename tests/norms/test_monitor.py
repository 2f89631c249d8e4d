"""spectral_gan/norms/monitor.py: what a method reports (raw and effective sigma, diagnostics) and the per-layer scalars; no method named."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.models import DCGANDiscriminator, MLPDiscriminator
from spectral_gan.norms import NormHook, power_iteration_paused
from spectral_gan.norms.monitor import condition_numbers, spectral_report
from tests.norms.weights import sigma


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


def test_spectral_report_sn_raw_sigmas_and_no_tautological_bound():
    torch.manual_seed(0)
    d = MLPDiscriminator((2,), hidden=16, norm=NormHook("sn"))
    for _ in range(200):
        d(torch.randn(8, 2))
    report = spectral_report(d)
    for name, m in [("fc0", d.net[0]), ("out", d.net[-1])]:
        assert report[f"sigma/{name}"].item() == pytest.approx(
            sigma(m.parametrizations.weight.original, 0).item(), rel=1e-3)
    # the old product of u^T (W / u^T W v) v, identically 1 under SN, is gone
    assert not any(k.startswith("lipschitz/") for k in report)


def test_spectral_report_unnormalized_uses_exact_sigma_and_bsn_both_directions():
    d = DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("none"))
    report = spectral_report(d)
    for m in d.modules():
        if hasattr(m, "norm_name"):
            assert report[f"sigma/{m.norm_name}"].item() == pytest.approx(sigma(m.weight, 0).item(), rel=1e-5)
    bsn = spectral_report(DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("bsn")))
    assert "sigma/conv1/out" in bsn and "sigma/conv1/in" in bsn
    osn = spectral_report(DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("osn", gate="logit_gap")))
    assert osn["osn_gate/conv0"].item() == 0.0


def test_condition_numbers():
    d = MLPDiscriminator((2,), hidden=8, norm=NormHook("sn"))
    cond = condition_numbers(d)
    s = torch.linalg.svdvals(d.net[2].parametrizations.weight.original.detach())
    assert cond["condition/fc1"].item() == pytest.approx((s[0] / s[-1]).item(), rel=1e-4)
    # sigma_eff: the exact norm of the normalized weight, not the iteration's own u^T W v: a
    # lagging iteration (here: none since construction's warm-up) shows as a value off 1.
    with power_iteration_paused(d):  # in training mode each access of .weight iterates
        exact = torch.linalg.matrix_norm(d.net[2].weight.detach(), ord=2)
    assert cond["sigma_eff/fc1"].item() == pytest.approx(exact.item(), rel=1e-5)
    with torch.no_grad():  # the raw weight moves; u, v stay: the effective norm is no longer 1
        d.net[2].parametrizations.weight.original.add_(torch.randn(8, 8))
    assert abs(condition_numbers(d)["sigma_eff/fc1"].item() - 1.0) > 1e-2


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
