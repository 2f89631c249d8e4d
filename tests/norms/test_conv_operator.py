"""The convolution operator norm (norms/conv_operator.py) and strict SN (norm.weight=sn_conv)."""
from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from spectral_gan.models import DCGANDiscriminator
from spectral_gan.norms import conv_operator, power_iteration_paused
from spectral_gan.norms.conv_spectral import ConvSpectralNorm, conv_spectral_norm
from spectral_gan.norms.hook import NormHook

# Layers built inside the test under a fixed seed: built at import, their weights depended on
# what other test modules had drawn before, and a draw whose two largest singular values lie
# close together slows the power iteration below the tolerance (a failure on one clean run).
LAYERS = [
    (lambda: nn.Conv2d(2, 3, 3, 1, 1), (2, 5, 5), "Conv2d"),
    (lambda: nn.Conv2d(2, 3, 4, 2, 1), (2, 5, 5), "Conv2d-stride2"),
    (lambda: nn.Conv2d(2, 4, 3, 1, 2, dilation=2), (2, 5, 5), "Conv2d-dilation2"),
    (lambda: nn.Conv2d(2, 4, 3, 1, 1, padding_mode="circular"), (2, 5, 5), "Conv2d-circular"),
    (lambda: nn.Conv2d(2, 4, 1), (2, 5, 5), "Conv2d-1x1"),
    (lambda: nn.ConvTranspose2d(2, 3, 4, 2, 1), (2, 5, 5), "ConvTranspose2d"),
    (lambda: nn.Conv1d(2, 3, 3, 1, 1), (2, 7), "Conv1d"),
    (lambda: nn.Linear(6, 4), (6,), "Linear"),
]


@pytest.mark.parametrize("make,shape", [(m, s) for m, s, _ in LAYERS], ids=[i for _, _, i in LAYERS])
def test_operator_norm_matches_the_dense_matrix_of_impulse_responses(make, shape):
    torch.manual_seed(0)
    layer = make()
    w = layer.weight.detach()
    dense = conv_operator.dense_matrix(layer, w, shape)
    # The dense matrix is the layer: its product with a flattened input is the layer's output.
    x = torch.randn(1, *shape)
    assert torch.allclose(dense @ x.flatten(), conv_operator.apply(layer, w, x).flatten(), atol=1e-5)
    # The adjoint is the transpose.
    y = torch.randn_like(conv_operator.apply(layer, w, x))
    assert torch.allclose(conv_operator.adjoint(layer, w, y, (1, *shape)).flatten(),
                          dense.t() @ y.flatten(), atol=1e-5)
    exact = torch.linalg.svdvals(dense)[0]
    estimate = conv_operator.operator_norm(layer, w, shape, n=2000, tol=1e-9)
    assert estimate.item() == pytest.approx(exact.item(), rel=1e-4)


def test_conv_operator_norm_can_exceed_the_reshaped_matrix_norm():
    # Tsuzuku et al. 2018: an all-ones 3x3 kernel has matrix norm 3 but operator norm near 9
    # (interior positions sum 9 inputs); the reshaped matrix is no bound.
    layer = nn.Conv2d(1, 1, 3, 1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    matrix = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
    op = conv_operator.operator_norm(layer, layer.weight.detach(), (1, 16, 16))
    assert matrix.item() == pytest.approx(3.0)
    assert op.item() > 8.0


def _trained_sn_conv_net(steps: int = 300) -> nn.Module:
    torch.manual_seed(0)
    d = DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("sn_conv"))
    for _ in range(steps):
        d(torch.randn(2, 1, 32, 32))
    return d


def test_sn_conv_normalizes_the_operator_norm_to_one():
    torch.manual_seed(0)
    hook = NormHook("sn_conv")
    net = nn.Sequential(hook.wrap(nn.Conv2d(2, 3, 3, 1, 1), "a"), nn.ReLU(),
                        hook.wrap(nn.Conv2d(3, 4, 4, 2, 1), "b"), nn.Flatten(),
                        hook.wrap(nn.Linear(4 * 3 * 3, 1), "out"))
    for _ in range(300):
        net(torch.randn(2, 2, 6, 6))
    for layer, shape in [(net[0], (2, 6, 6)), (net[2], (3, 6, 6))]:
        assert isinstance(layer.parametrizations.weight[0], ConvSpectralNorm)
        w = layer.weight.detach()
        exact = torch.linalg.svdvals(conv_operator.dense_matrix(layer, w, shape))[0]
        assert exact.item() == pytest.approx(1.0, rel=1e-3)
        # ... which matrix SN would not have given: the reshaped matrix's norm differs
        assert abs(torch.linalg.matrix_norm(w.flatten(1), ord=2).item() - 1.0) > 0.05
    # the linear head falls back to matrix SN
    assert torch.linalg.matrix_norm(net[4].weight.detach(), ord=2).item() == pytest.approx(1.0, rel=1e-3)


def test_sn_conv_checkpoint_round_trip_restores_the_input_shaped_vector():
    d = _trained_sn_conv_net(5)
    buf = io.BytesIO()
    torch.save(d.state_dict(), buf)
    fresh = DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("sn_conv"))
    fresh.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    x = torch.randn(3, 1, 32, 32)
    d.eval(), fresh.eval()
    assert torch.equal(d(x), fresh(x))
    v = fresh.features[0].parametrizations.weight[0].power.v
    assert v.shape == (1, 1, 32, 32)


def test_sn_conv_on_a_bare_layer_and_pause():
    layer = conv_spectral_norm(nn.Conv2d(2, 3, 3, 1, 1))
    layer(torch.randn(1, 2, 6, 6))
    p = layer.parametrizations.weight[0]
    v0 = p.power.v.clone()
    with power_iteration_paused(layer):
        layer(torch.randn(1, 2, 6, 6))
    assert torch.equal(v0, p.power.v)
    layer(torch.randn(1, 2, 6, 6))
    assert not torch.equal(v0, p.power.v)


def test_sn_with_weight_sn_conv_trains_on_mnist5k_and_logs_operator_norms(cfg_factory, tmp_path):
    from spectral_gan.training.run import train
    from tests.test_train import scalars
    result = train(cfg_factory("data=mnist5k", "batch_size=8", "generator.ch=4",
                               "discriminator.ch=4", "norm=sn", "norm.weight=sn_conv", "steps=3"))
    assert result["gen_step"] == 3
    d = result["module"].D
    assert isinstance(d.features[0].parametrizations.weight[0], ConvSpectralNorm)
    logged = scalars(str(tmp_path))
    assert "sigma_op/conv0" in logged and "sigma/conv0" in logged
    assert logged["lipschitz/bound_layerwise"][-1][1] >= logged["lipschitz/grad_max"][-1][1]
