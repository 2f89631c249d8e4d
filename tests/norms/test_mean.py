"""spectral_gan/norms/mean.py: MSN (Subramanian & Chong 2019): the centring, where it sits in each architecture, and against a reference written from the paper."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spectral_gan.errors import ConfigError
from spectral_gan.models import DCGANDiscriminator, MLPDiscriminator
from spectral_gan.models.resnet import ResNetDiscriminator
from spectral_gan.norms import (MeanCenter, MeanSpectralNorm, NormHook, mean_spectral_norm,
                                power_iteration_paused)


def centred(model: nn.Module) -> set[str]:
    return {m.layer.norm_name for m in model.modules()
            if isinstance(m, MeanSpectralNorm) and isinstance(m.center, MeanCenter)}


def wrapped(model: nn.Module) -> set[str]:
    return {m.layer.norm_name for m in model.modules() if isinstance(m, MeanSpectralNorm)}


BUILDERS = {
    "dcgan": (lambda norm: DCGANDiscriminator((1, 32, 32), ch=4, norm=norm), (1, 32, 32)),
    "mlp": (lambda norm: MLPDiscriminator((2,), hidden=16, norm=norm), (2,)),
    "maxout": (lambda norm: MLPDiscriminator((2,), hidden=8, activation="maxout", norm=norm), (2,)),
    "resnet": (lambda norm: ResNetDiscriminator((1, 32, 32), ch=4, norm=norm), (1, 32, 32)),
}


SITES = {
    "dcgan": {"conv3", "conv5", "conv6"},  # the authors' _MSNnetD exactly
    "mlp": {"fc1", "fc2"},
    "maxout": {"fc1", "fc2"},
    "resnet": {"block1.conv2", "block2.conv2", "block3.conv2"},
}


def batch_shift_response(d: nn.Module, x: torch.Tensor) -> float:
    d.train()
    with torch.no_grad(), power_iteration_paused(d):
        return float((d(x + 0.5) - d(x)).abs().max())


def test_msn_centers_each_channel_in_training_and_uses_running_mean_in_eval():
    torch.manual_seed(0)
    layer = mean_spectral_norm(nn.Conv2d(3, 5, 3), momentum=0.5)
    x = torch.randn(16, 3, 8, 8) + 3.0
    y = layer(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-5, rtol=0)
    sn_out = layer.layer(x).detach()
    torch.testing.assert_close(layer.center.running_mean, 0.5 * sn_out.mean(dim=(0, 2, 3)),
                               rtol=1e-4, atol=1e-5)
    layer.eval()
    y_eval = layer(x)
    torch.testing.assert_close(y_eval, layer.layer(x) - layer.center.running_mean.view(1, -1, 1, 1))
    assert not hasattr(layer.center.weight, "shape")  # gamma off by default
    assert MeanCenter(5, learn_scale=True).weight.shape == (5,)


@pytest.mark.parametrize("make,shape,layout", [
    (lambda: nn.Conv2d(3, 5, 4, 2, 1), (6, 3, 8, 8), torch.contiguous_format),
    (lambda: nn.Conv2d(3, 5, 4, 2, 1), (6, 3, 8, 8), torch.channels_last),  # speed.channels_last
    (lambda: nn.Linear(7, 4), (6, 7), torch.contiguous_format)])
@pytest.mark.parametrize("frozen", [False, True])  # True: D during the generator's update
def test_msn_folded_into_the_bias_equals_separate_centering(make, shape, layout, frozen):
    torch.manual_seed(0)
    folded = mean_spectral_norm(make(), momentum=0.3)
    separate = mean_spectral_norm(make(), momentum=0.3)
    separate.load_state_dict(folded.state_dict())
    separate.fold = False
    assert folded.fold
    with torch.no_grad():
        folded.center.bias.normal_()
        separate.center.bias.copy_(folded.center.bias)
    folded.requires_grad_(not frozen)
    separate.requires_grad_(not frozen)
    x = (torch.randn(shape) + 2.0).contiguous(memory_format=layout).requires_grad_()
    x2 = x.detach().contiguous().requires_grad_()
    with power_iteration_paused(folded), power_iteration_paused(separate):
        y, y2 = folded(x), separate(x2)
        torch.testing.assert_close(y, y2, rtol=1e-4, atol=1e-5)
        (y * torch.linspace(-1, 2, y.numel()).view_as(y)).sum().backward()
        (y2 * torch.linspace(-1, 2, y2.numel()).view_as(y2)).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-5)
    for (name, a), b in zip(folded.named_parameters(), separate.parameters()):
        if frozen:
            assert a.grad is None and b.grad is None
        elif name == "layer.bias":  # cancels out of y: no gradient (folded) or a zero one (separate)
            assert a.grad is None and b.grad.abs().max() < 1e-4
        else:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-4, msg=lambda m: f"{name}: {m}")
    torch.testing.assert_close(folded.center.running_mean, separate.center.running_mean)
    folded.eval(), separate.eval()
    torch.testing.assert_close(folded(x), separate(x2), rtol=1e-4, atol=1e-5)


def test_msn_does_not_center_the_logit_layer():
    d = MLPDiscriminator((2,), norm=NormHook("msn"))
    assert isinstance(d.net[-1].center, nn.Identity)
    assert isinstance(d.net[2].center, MeanCenter)  # fc1: a hidden layer after the input layer


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_default_placement_is_the_architectures_rule_never_the_input_layer(arch):
    build, _ = BUILDERS[arch]
    d = build(NormHook("msn"))
    assert centred(d) == SITES[arch]
    first = "conv0" if arch == "dcgan" else "block0.conv1" if arch == "resnet" else "fc0"
    assert first in wrapped(d) and first not in centred(d)  # SN on it, no centring
    # every weight layer still carries SN, centred or not
    assert all(hasattr(m.layer, "parametrizations") for m in d.modules()
               if isinstance(m, MeanSpectralNorm))


def test_center_option_chooses_the_sites():
    every = MLPDiscriminator((2,), hidden=8, norm=NormHook("msn", center="hidden"))
    assert centred(every) == {"fc0", "fc1", "fc2"}  # never the logit layer "out"
    picked = DCGANDiscriminator((1, 32, 32), ch=2, norm=NormHook("msn", center=["conv1", "conv[56]"]))
    assert centred(picked) == {"conv1", "conv5", "conv6"}
    only = DCGANDiscriminator((1, 32, 32), ch=2, norm=NormHook("msn", apply_to=["conv3", "dense"]))
    assert wrapped(only) == {"conv3", "dense"} and centred(only) == {"conv3"}
    with pytest.raises(ConfigError, match="auto | hidden"):
        NormHook("msn", center="everywhere").wrap(nn.Linear(2, 2), "fc0")


def test_a_model_without_a_rule_centres_every_hidden_layer_but_the_first():
    hook = NormHook("msn")
    layers = [hook.wrap(nn.Linear(2, 4), "a"), hook.wrap(nn.Linear(4, 4), "b"),
              hook.wrap(nn.Linear(4, 1), "c", output=True)]
    assert [isinstance(m.center, MeanCenter) for m in layers] == [False, True, False]


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_discriminator_in_training_mode_sees_a_shift_of_the_whole_batch(arch):
    build, shape = BUILDERS[arch]
    x = torch.randn(32, *shape, generator=torch.Generator().manual_seed(0))
    response = {}
    for key, norm in [("sn", NormHook("sn")), ("msn", NormHook("msn")),
                      ("hidden", NormHook("msn", center="hidden"))]:
        torch.manual_seed(1)
        response[key] = batch_shift_response(build(norm), x)
    # Centring the input layer (the old placement) shrinks the response; the authors'
    # placement keeps it near plain SN's.
    assert response["msn"] > 2 * response["hidden"], response
    assert response["msn"] > 0.3 * response["sn"], response


def test_dcgan_msn_forward_and_backward_match_a_reference_written_from_the_paper():
    """y_l = conv(h, W_l / sigma(W_l)) (+ b), then at conv3/5/6 y - mean_batch,positions(y) + beta;
    leaky ReLU 0.1; dense W / sigma(W) on the flattened features (Subramanian & Chong 2019, eq. 5-6,
    placed as in ``_MSNnetD``). Forward and the gradient with respect to the input batch (the
    centring's backward couples the samples) agree."""
    torch.manual_seed(0)
    d = DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("msn")).train()
    with torch.no_grad():
        for m in d.modules():
            if isinstance(m, MeanCenter):
                m.bias.normal_()
    x = torch.randn(8, 1, 32, 32)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.linspace(-1, 1, 8)
    with power_iteration_paused(d):
        got = d(x1)
        (got * weights).sum().backward()
        h = x2
        for i, m in enumerate(m for m in d.features if isinstance(m, MeanSpectralNorm)):
            conv = m.layer
            raw = conv.parametrizations.weight.original.detach()
            sig = torch.linalg.matrix_norm(raw.flatten(1), 2)
            w = conv.weight.detach()  # SN's estimate, converged here to within a few percent
            torch.testing.assert_close(w, raw / sig, rtol=5e-2, atol=1e-3)
            y = F.conv2d(h, w, conv.bias.detach(), conv.stride, conv.padding)
            if i in (3, 5, 6):
                y = y - y.mean(dim=(0, 2, 3), keepdim=True) + m.center.bias.detach().view(1, -1, 1, 1)
            h = F.leaky_relu(y, 0.1)
        head = d.head.layer
        want = F.linear(h.flatten(1), head.weight.detach(), head.bias.detach()).squeeze(1)
        (want * weights).sum().backward()
    torch.testing.assert_close(got.detach().view(-1), want.detach().view(-1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-6)


def test_feature_mean_centres_after_every_hidden_layer_but_the_first():
    """norm.feature=mean: MSN's centring alone, where the models place a feature norm (after each
    hidden layer but the input layer), so D still sees a batch shift."""
    d = DCGANDiscriminator((1, 32, 32), ch=2, norm=NormHook("sn", feature="mean"))
    centres = [i for i, m in enumerate(d.features) if isinstance(m, MeanCenter)]
    convs = [i for i, m in enumerate(d.features) if hasattr(m, "norm_name")]
    assert len(centres) == 6 and centres[0] > convs[1] and all(c - 1 in convs for c in centres)
    x = torch.randn(16, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert batch_shift_response(d, x) > 1e-5
