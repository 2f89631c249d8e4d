"""spectral_gan/penalties.py: each gradient penalty against hand-computed values, the papers' and the code's DRAGAN, fp16 scaling."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from spectral_gan.errors import ConfigError
from spectral_gan.penalties import dragan, dragan_code, get_penalty, r1, wgan_gp


W = torch.tensor([3.0, 4.0])  # ||grad_x D|| = 5 everywhere


def linear_d(x: torch.Tensor) -> torch.Tensor:
    return x @ W + 1.0


def _recording_d(seen: list):
    w = torch.tensor([1.0, -2.0, 0.5, 0.0])

    def d(x):
        seen.append(x.detach().clone())
        return (x * w).sum(1)
    return d


def _tiny_d(factor: float):
    torch.manual_seed(0)
    lin = nn.Linear(16, 1)
    return lambda x: (lin(x) * factor).squeeze(1), lin


def test_wgan_gp_value():
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert wgan_gp(linear_d, real, fake, weight=10.0).item() == pytest.approx(10 * (5 - 1) ** 2)


def test_r1_value():
    assert r1(linear_d, torch.randn(6, 2), weight=10.0).item() == pytest.approx(10 / 2 * 25)


def test_dragan_value():
    assert dragan(linear_d, torch.randn(6, 2), weight=2.0).item() == pytest.approx(2 * 16)


def test_penalty_on_a_quadratic_d_is_per_sample():
    d = lambda x: 0.5 * (x ** 2).sum(dim=1)  # noqa: E731  grad = x, ||grad|| = ||x||
    real = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert r1(d, real, weight=2.0).item() == pytest.approx((25 + 1) / 2)
    # interpolates of identical real and fake are those points
    assert wgan_gp(d, real, real.clone(), weight=1.0).item() == pytest.approx(((5 - 1) ** 2 + 0) / 2)


def test_penalty_gradients_reach_the_discriminator():
    d = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    for name in ("wgan_gp", "r1", "dragan"):
        d.zero_grad()
        get_penalty(name).fn(lambda x: d(x).squeeze(1), torch.randn(4, 2), torch.randn(4, 2)).backward()
        assert d[0].weight.grad is not None and d[0].weight.grad.abs().sum() > 0, name


def test_unknown_penalty_lists_valid_ones():
    with pytest.raises(ConfigError, match="wgan_gp, r1, r1r2, dragan"):
        get_penalty("l2")


def test_dragan_perturbs_with_the_papers_symmetric_gaussian():
    torch.manual_seed(0)
    seen: list = []
    real = torch.randn(20000, 4)
    dragan(_recording_d(seen), real, variance=10.0)
    delta = seen[0] - real
    assert abs(delta.mean().item()) < 0.05  # centered: symmetric around x, not one-sided
    assert delta.var().item() == pytest.approx(10.0, rel=0.03)  # N(0, c I), c = 10
    assert (delta > 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    third = (delta ** 3).mean().item() / delta.var().item() ** 1.5
    assert abs(third) < 0.05  # no skew
    corr = torch.corrcoef(delta.T)  # coordinates independent
    assert (corr - torch.eye(4)).abs().max().item() < 0.03


def test_dragan_code_interpolates_towards_one_sided_noise():
    torch.manual_seed(0)
    seen: list = []
    real = torch.randn(20000, 4) * 3.0
    dragan_code(_recording_d(seen), real)
    unit = (seen[0] - real) / (0.5 * real.std())  # = alpha * U, alpha per sample
    assert unit.min().item() >= 0 and unit.max().item() <= 1
    assert unit.mean().item() == pytest.approx(0.25, abs=0.01)  # E[alpha] E[U]
    # alpha is shared by a sample's coordinates: they correlate (var(alpha) E[U]^2 / var(alpha U))
    corr = torch.corrcoef(unit.T)[0, 1].item()
    assert corr == pytest.approx((1 / 12 * 1 / 4) / (1 / 3 * 1 / 3 - 1 / 16), abs=0.03)


def test_dragan_code_is_a_penalty_name():
    assert get_penalty("dragan_code").fn is dragan_code


def test_penalty_with_scale_survives_fp16_underflow():
    d, lin = _tiny_d(1e-8)
    x = torch.randn(8, 16)
    reference = r1(d, x, weight=2.0 / 1e-16)  # fp32: ||grad|| = 1e-8 ||w||
    torch.testing.assert_close(reference, (lin.weight.detach() ** 2).sum(), rtol=1e-4, atol=0)
    with torch.autocast("cpu", dtype=torch.float16):
        assert lin(x).dtype == torch.float16
        unscaled = r1(d, x, weight=2.0 / 1e-16)
        scaled = r1(d, x, weight=2.0 / 1e-16, scale=65536.0)
        scaled_tensor = r1(d, x, weight=2.0 / 1e-16, scale=torch.tensor(65536.0))
    assert unscaled.item() == 0.0  # every input gradient underflowed in fp16
    torch.testing.assert_close(scaled, reference, rtol=2e-2, atol=0)
    torch.testing.assert_close(scaled_tensor, scaled)


@pytest.mark.parametrize("name", ["wgan_gp", "r1", "dragan", "dragan_code"])
def test_every_penalty_takes_the_scale_and_is_unchanged_by_it_in_fp32(name):
    torch.manual_seed(0)
    d = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    real, fake = torch.randn(5, 3), torch.randn(5, 3)
    fn = get_penalty(name).fn
    torch.manual_seed(1)
    plain = fn(lambda x: d(x).squeeze(1), real, fake)
    torch.manual_seed(1)
    scaled = fn(lambda x: d(x).squeeze(1), real, fake, scale=1024.0)
    torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=1e-6)
    scaled.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in d.parameters())
