"""spectral_gan/norms/spectral.py: SN (Miyato et al. 2018) against a dense SVD, its state and precision, learnable scales."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from spectral_gan.errors import ConfigError
from spectral_gan.norms import NormHook, power_iteration_paused, spectral_norm
from spectral_gan.norms.spectral import learned_scales
from tests.norms.weights import sigma


@pytest.mark.parametrize("make,dim", [
    (lambda: nn.Linear(20, 12), 0),
    (lambda: nn.Conv2d(3, 8, 3), 0),
    (lambda: nn.ConvTranspose2d(8, 5, 4, 2, 1), 1),
])
def test_sn_weight_matches_dense_svd(make, dim):
    torch.manual_seed(0)
    layer = make()
    raw = layer.weight.detach().clone()
    spectral_norm(layer)
    layer.train()
    for _ in range(200):  # each training-mode access advances the iteration, as in torch
        w = layer.weight
    expected = raw / sigma(raw, dim)
    torch.testing.assert_close(w.detach(), expected, rtol=1e-3, atol=1e-5)
    # the normalized weight has spectral norm 1
    assert sigma(w, dim).item() == pytest.approx(1.0, abs=1e-3)


def test_conv_transpose_uses_output_dim():
    layer = spectral_norm(nn.ConvTranspose2d(8, 5, 4))
    power = layer.parametrizations.weight[0].power
    assert power.u.shape == (5,)  # rows are the output channels (dim 1)
    assert power.v.shape == (8 * 4 * 4,)


def test_state_dict_round_trip_restores_vectors():
    torch.manual_seed(1)
    a = spectral_norm(nn.Conv2d(3, 4, 3))
    for _ in range(5):
        a.weight
    b = spectral_norm(nn.Conv2d(3, 4, 3))
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    assert torch.equal(a.weight, b.weight)
    keys = set(a.state_dict())
    assert {"parametrizations.weight.0.power.u", "parametrizations.weight.0.power.v"} <= keys


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_vectors_and_sigma_stay_fp32_under_autocast(dtype):
    layer = spectral_norm(nn.Linear(16, 8))
    power = layer.parametrizations.weight[0].power
    with torch.autocast("cpu", dtype=dtype):
        y = layer(torch.randn(2, 16))
        estimate = power.sigma(layer.parametrizations.weight.original)
    assert y.dtype == dtype  # the layer itself does run in low precision
    assert power.u.dtype == power.v.dtype == estimate.dtype == torch.float32


@pytest.mark.parametrize("weight", ["sn", "bsn"])
@pytest.mark.parametrize("mode", ["shared", "per_layer"])
def test_learnable_scale_multiplies_weight_and_bias_and_learns(weight, mode):
    torch.manual_seed(0)
    hook = NormHook(weight, learnable_scale=mode)
    net = nn.Sequential(hook.wrap(nn.Conv2d(2, 4, 3), "conv0"), nn.Flatten(),
                        hook.wrap(nn.Linear(4 * 4 * 4, 1), "out"))
    gammas = {id(m.parametrizations.weight[1].gamma) for m in (net[0], net[2])}
    assert len(gammas) == (1 if mode == "shared" else 2)
    n_params = sum(1 for _ in net.parameters())
    assert n_params == 4 + len(gammas)  # two raw weights, two raw biases, the gamma(s)
    layer = net[2]
    with power_iteration_paused(net), torch.no_grad():
        layer.parametrizations.weight[1].gamma.fill_(1.7)
        p = layer.parametrizations.weight
        w_norm = p[0](p.original)
        torch.testing.assert_close(layer.weight, 1.7 * w_norm)
        torch.testing.assert_close(layer.bias, 1.7 * layer.parametrizations.bias.original)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = {k: v.item() for k, v in learned_scales(net).items()}
    assert set(before) == ({"learnable_scale/shared"} if mode == "shared"
                           else {"learnable_scale/conv0", "learnable_scale/out"})
    net(torch.randn(8, 2, 6, 6)).pow(2).mean().backward()
    for m in (net[0], net[2]):
        g = m.parametrizations.weight[1].gamma.grad
        assert g is not None and g.abs().item() > 0
    opt.step()
    after = {k: v.item() for k, v in learned_scales(net).items()}
    assert all(after[k] != before[k] for k in before)


def test_unknown_learnable_scale_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid options are: none, shared, per_layer"):
        NormHook("sn", learnable_scale="everywhere").wrap(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="norm.weight=osn does not take option 'learnable_scale'"):
        NormHook("osn", learnable_scale="shared")
