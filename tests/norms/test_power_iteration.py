"""spectral_gan/norms/power_iteration.py: the cadence of the iteration (once per update, paused, cached), its fp32 buffers, zero weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.models import DCGANDiscriminator
from spectral_gan.norms import (NormHook, PowerIteration, bidirectional_spectral_norm,
                                mean_spectral_norm, optional_spectral_norm, power_iteration_paused,
                                spectral_norm)
from spectral_gan.norms.power_iteration import SecondDimPowerIteration
from tests.norms.weights import converge, sigma


ZERO_CASES = {
    "sn": lambda: spectral_norm(nn.Conv2d(2, 3, 3)),
    "bsn": lambda: bidirectional_spectral_norm(nn.Conv2d(2, 3, 3)),
    "bsn_linear": lambda: bidirectional_spectral_norm(nn.Linear(4, 3)),
    "msn": lambda: mean_spectral_norm(nn.Conv2d(2, 3, 3)),
    "osn_clip": lambda: optional_spectral_norm(nn.Conv2d(2, 3, 3)),
    "osn_full": lambda: optional_spectral_norm(nn.Conv2d(2, 3, 3), mode="full"),
    "sn_transposed": lambda: spectral_norm(nn.ConvTranspose2d(2, 3, 4, 2, 1)),
}


def test_eval_mode_and_pause_do_not_iterate():
    layer = spectral_norm(nn.Linear(6, 4))
    power = layer.parametrizations.weight[0].power
    u0 = power.u.clone()
    layer.eval()
    w_eval = layer.weight
    assert torch.equal(power.u, u0)
    torch.testing.assert_close(w_eval, layer.parametrizations.weight.original / (u0 @ layer.parametrizations.weight.original @ power.v))
    layer.train()
    with power_iteration_paused(layer):
        layer.weight
    assert torch.equal(power.u, u0)
    layer.weight
    assert not torch.equal(power.u, u0)


def test_cached_evaluates_once_for_many_forwards(monkeypatch):
    calls = []
    orig = PowerIteration.step
    monkeypatch.setattr(PowerIteration, "step", lambda self, m, n: (calls.append(n), orig(self, m, n)))
    layer = spectral_norm(nn.Linear(6, 4))
    calls.clear()  # construction: warm-up iterations and the registration check
    x = torch.randn(3, 6)
    with parametrize.cached():
        out = layer(x).sum() + layer(x).sum() + layer(x).sum()
    out.backward()
    assert calls == [1]
    assert layer.parametrizations.weight.original.grad is not None


def test_second_dim_power_iteration_matches_the_transposed_matrix():
    torch.manual_seed(0)
    w = torch.randn(6, 4, 3, 3)
    matrix = w.movedim(1, 0).flatten(1)  # (4, 54): what BSN's input view means
    u, v = torch.randn(4), torch.randn(54)
    torch.testing.assert_close(SecondDimPowerIteration.mv(w.flatten(2), v), matrix @ v)
    torch.testing.assert_close(SecondDimPowerIteration.mv_t(w.flatten(2), u), matrix.t() @ u)
    p = SecondDimPowerIteration(w.flatten(2), eps=1e-12, warmup_iterations=200)
    torch.testing.assert_close(p.sigma(w.flatten(2)), sigma(w, 1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("norm", ["bsn", "osn", "msn"])
def test_one_iteration_per_update_for_every_family(norm, monkeypatch):
    d = DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook(norm))
    powers = [m for m in d.modules() if isinstance(m, PowerIteration)]
    assert len(powers) == (15 if norm == "bsn" else 8)  # BSN: two vectors per conv, one for dense
    counts: dict[int, int] = {}
    original = PowerIteration.step

    def counting(self, matrix, n):
        counts[id(self)] = counts.get(id(self), 0) + n
        return original(self, matrix, n)

    monkeypatch.setattr(PowerIteration, "step", counting)
    with parametrize.cached():  # one D update with two forwards
        (d(torch.randn(4, 1, 32, 32)).sum() + d(torch.randn(4, 1, 32, 32)).sum()).backward()
    assert [counts.get(id(p), 0) for p in powers] == [1] * len(powers)
    with power_iteration_paused(d), parametrize.cached():  # the generator update
        d(torch.randn(4, 1, 32, 32)).sum().backward()
    assert [counts.get(id(p), 0) for p in powers] == [1] * len(powers)


@pytest.mark.parametrize("fn", [bidirectional_spectral_norm, optional_spectral_norm])
def test_family_buffers_fp32_under_autocast_and_round_trip(fn):
    a = fn(nn.Conv2d(3, 4, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a(torch.randn(2, 3, 6, 6))
    assert all(b.dtype == torch.float32 for b in a.buffers())
    b = fn(nn.Conv2d(3, 4, 3))
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    assert torch.equal(a.weight, b.weight)


@pytest.mark.parametrize("case", list(ZERO_CASES))
def test_zero_weight_gives_finite_forward_and_backward(case):
    torch.manual_seed(0)
    layer = ZERO_CASES[case]()
    target = layer.layer if case == "msn" else layer
    with torch.no_grad():
        target.parametrizations.weight.original.zero_()
    x = torch.randn(4, 4) if case == "bsn_linear" else torch.randn(4, 2, 6, 6)
    for _ in range(3):  # the power iteration meets the zero weight several times
        out = layer(x)
        assert torch.isfinite(out).all() and torch.isfinite(target.weight).all()
        out.square().mean().backward()
        raw = target.parametrizations.weight.original
        assert torch.isfinite(raw.grad).all()
    # u and v were not zeroed: once the weight is nonzero again, sigma is estimated again
    with torch.no_grad():
        raw.normal_()
    w = converge(target)
    assert torch.isfinite(w).all()
    expected = 1.0 if case != "osn_clip" else min(1.0, sigma(raw, 0).item())
    dim = 1 if case == "sn_transposed" else 0
    if not case.startswith("bsn") or case == "bsn_linear":
        assert sigma(w, dim).item() == pytest.approx(expected, rel=1e-2)
