"""The Lipschitz figures (norms/lipschitz.py): a bound that follows the architecture, above the
largest input gradient; equal for a linear net; per-layer diagnostics default-on."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spectral_gan.models import DCGANDiscriminator, MLPDiscriminator, ResNetDiscriminator
from spectral_gan.norms import NormHook
from spectral_gan.norms.lipschitz import LayerConstants, input_gradient_norms, lipschitz_report
from spectral_gan.norms.monitor import activation_drift, drift_of
from spectral_gan.training.schedule import Schedule


def _brute_force(model: nn.Module, shape, n: int = 4000) -> float:
    torch.manual_seed(1)
    model.eval()
    return input_gradient_norms(model, torch.randn(n, *shape) * 2).max().item()


@pytest.mark.parametrize("activation", ["leaky_relu", "selu"])
def test_bound_of_a_two_layer_net_is_above_every_input_gradient(activation):
    torch.manual_seed(0)
    d = MLPDiscriminator((3,), hidden=5, depth=1, activation=activation)
    bound = lipschitz_report(d, torch.randn(4, 3), torch.randn(4, 3), LayerConstants(None))[
        "lipschitz/bound_layerwise"].item()
    w1, w2 = d.net[0].weight.detach(), d.net[-1].weight.detach()
    act = 1.0507009873554805 * 1.6732632423543772 if activation == "selu" else 1.0
    assert bound == pytest.approx(torch.linalg.matrix_norm(w1, ord=2).item() * act
                                  * w2.norm().item(), rel=1e-5)
    assert bound >= _brute_force(d, (3,))


def test_bound_is_exact_for_a_linear_net():
    torch.manual_seed(0)
    d = MLPDiscriminator((3,), hidden=5, depth=1)
    d.net[1] = nn.Identity()  # the activation removed: D is linear, its gradient constant
    bound = lipschitz_report(d, torch.randn(4, 3), torch.randn(4, 3), LayerConstants(None))
    w = (d.net[-1].weight @ d.net[0].weight).detach()
    assert bound["lipschitz/grad_max"].item() == pytest.approx(w.norm().item(), rel=1e-5)
    # the product of the two norms bounds the norm of the product; equal when aligned
    with torch.no_grad():
        d.net[-1].weight.copy_(torch.linalg.svd(d.net[0].weight)[0][:, 0].view(1, -1))
    bound = lipschitz_report(d, torch.randn(4, 3), torch.randn(4, 3), LayerConstants(None))
    assert bound["lipschitz/bound_layerwise"].item() == pytest.approx(
        bound["lipschitz/grad_max"].item(), rel=1e-4)


@pytest.mark.parametrize("make,shape", [
    (lambda: DCGANDiscriminator((1, 32, 32), ch=2, norm=NormHook("sn")), (1, 32, 32)),
    (lambda: ResNetDiscriminator((1, 32, 32), ch=2, norm=NormHook("none")), (1, 32, 32)),
    (lambda: ResNetDiscriminator((1, 32, 32), ch=2, norm=NormHook("msn")), (1, 32, 32)),
])
def test_image_discriminator_bounds_exceed_their_gradients(make, shape):
    torch.manual_seed(0)
    d = make()
    x = torch.randn(8, *shape)
    d(x)
    report = lipschitz_report(d, x, torch.randn_like(x), LayerConstants(30))
    bound = report["lipschitz/bound_layerwise"].item()
    assert d.training  # the mode is restored
    assert 0 < bound < float("inf")
    assert bound >= _brute_force(d, shape, n=64)


def test_resnet_bound_adds_its_branches():
    d = ResNetDiscriminator((1, 32, 32), ch=2)
    d(torch.randn(2, 1, 32, 32))
    ones = lambda module: torch.tensor(1.0)  # noqa: E731  every part 1-Lipschitz
    # block0 (down): 1/2 + 1/2; block1 (down): 1/2 + 1/2; blocks 2-3: 1 + 1 (identity shortcut);
    # sum over 8x8 positions: 8
    assert d.lipschitz_bound(ones).item() == pytest.approx(1.0 * 1.0 * 2 * 2 * 8)


def test_drift_is_the_rms_channel_mean_and_msn_removes_it():
    y = torch.zeros(4, 2, 3, 3)
    y[:, 0] = 3.0
    assert drift_of(y).item() == pytest.approx((9 / 2) ** 0.5)
    torch.manual_seed(0)
    x = torch.rand(16, 4) + 1.0
    sn = activation_drift(MLPDiscriminator((4,), hidden=8, norm=NormHook("sn")), [x])
    msn_d = MLPDiscriminator((4,), hidden=8, norm=NormHook("msn"))
    running = msn_d.net[2].center.running_mean.clone()
    msn = activation_drift(msn_d, [x])
    # fc1 is centred (fc0, the input layer, is not: MSN's placement keeps a batch shift visible)
    assert sn["drift/fc1"] > 0.05 and msn["drift/fc1"] < 1e-5 and msn["drift/fc0"] > 0.05
    assert "drift/out" not in sn  # the logit layer is no hidden layer
    assert torch.equal(running, msn_d.net[2].center.running_mean)  # no side effect


def test_diagnostics_are_on_by_default(cfg_factory):
    from spectral_gan.training.settings import GANSettings
    schedule = GANSettings.from_config(cfg_factory()).schedule
    assert schedule.svd_every > 0 and schedule.lipschitz_every > 0 and schedule.layer_stats_every > 0
    assert Schedule().svd_every > 0


def test_maxout_discriminator_gets_a_finite_bound_above_its_gradients():
    """Maxout units state their constant (1); PacGAN's maxout D, packed or not, gets a bound."""
    for pack in (1, 4):
        torch.manual_seed(0)
        d = MLPDiscriminator((2,), hidden=6, depth=2, activation="maxout", maxout_pieces=3, pack=pack)
        x = torch.randn(8, 2)
        bound = lipschitz_report(d, x, x, LayerConstants(None))["lipschitz/bound_layerwise"].item()
        assert math.isfinite(bound)
        if pack == 1:  # unpacked: D is a function of one point, checked by brute force
            assert bound >= _brute_force(d, (2,))
