"""Speed switches and sync-free bookkeeping: each must leave the computation unchanged."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from spectral_gan.errors import ConfigError
from spectral_gan.models import DCGANDiscriminator, DCGANGenerator
from spectral_gan.training import ema
from spectral_gan.training.ema import EMASettings
from spectral_gan.training.gan import GAN
from spectral_gan.training.settings import GANSettings
from spectral_gan.losses import get_loss
from spectral_gan.norms import NormHook
from spectral_gan.training.speed import use_channels_last, validate_speed
from spectral_gan.training.run import train
from tests.test_train import RING


@pytest.mark.parametrize("weights,norm", [(False, "sn"), (True, "sn"), (False, "msn")])
def test_channels_last_feeds_every_conv_nhwc_and_computes_the_same(weights, norm):
    torch.manual_seed(0)
    g = DCGANGenerator((3, 32, 32), ch=4)
    d = DCGANDiscriminator((3, 32, 32), ch=4, norm=NormHook(norm))
    g.eval(), d.eval()  # MSN: running means, so both copies see the same statistics
    g2, d2 = copy.deepcopy(g), copy.deepcopy(d)
    assert use_channels_last(g2, weights) and use_channels_last(d2, weights)
    seen = []
    for m in [*g2.modules(), *d2.modules()]:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.register_forward_pre_hook(
                lambda _, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    z = torch.randn(5, 128)
    with torch.no_grad():
        torch.testing.assert_close(d2(g2(z)), d(g(z)), rtol=1e-4, atol=1e-5)
    assert len(seen) == 11 and all(seen)  # 4 generator convs, 7 discriminator convs
    assert not use_channels_last(nn.Sequential(nn.Linear(2, 2)))  # nothing to do without convs


def test_channels_last_holds_for_one_channel_images():
    # A (N, 1, H, W) batch is laid out alike in both formats; without explicit strides the first
    # convolution wrote NCHW and every later layer's input was copied back.
    torch.manual_seed(0)
    d = DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("sn"))
    d2 = copy.deepcopy(d)
    use_channels_last(d2)
    outputs = []
    for m in d2.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(lambda _, __, out: outputs.append(out))
    x = torch.randn(6, 1, 32, 32, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    y, y2 = d(x), d2(x2)
    torch.testing.assert_close(y2, y, rtol=1e-4, atol=1e-5)
    assert len(outputs) == 7
    assert all(o.stride(1) == 1 for o in outputs)  # NHWC: channels innermost
    y.sum().backward(), y2.sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-4, atol=1e-5)


def test_speed_options_are_validated():
    validate_speed({"channels_last": True, "compile": False, "compile_mode": "default"})
    with pytest.raises(ConfigError, match="speed.compile_mode must be one of default"):
        validate_speed({"compile_mode": "fastest"})
    with pytest.raises(ConfigError, match="speed.channels_last must be true or false"):
        validate_speed({"channels_last": "auto"})
    with pytest.raises(ConfigError, match="speed.joint_d_pass must be auto, true or false"):
        GANSettings(joint_d_pass="yes")  # the training loop's setting, checked where it is built


@pytest.mark.parametrize("norm", ["sn", "osn"])
def test_joint_d_pass_computes_the_same_training_run(cfg_factory, tmp_path, norm):
    # One D pass on cat(real, fake) is a speed switch: same losses, same updates, same u and v.
    common = [*RING, f"norm={norm}", "steps=3", "seed=5", "trainer.deterministic=true"]
    runs = {}
    for joint in (False, True):
        result = train(cfg_factory(*common, f"speed.joint_d_pass={str(joint).lower()}",
                                   run_dir=tmp_path / str(joint)))
        runs[joint] = result["module"]
        assert result["module"].joint_d_pass_active is joint
    for (name, a), b in zip(runs[False].state_dict().items(), runs[True].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


def test_joint_d_pass_is_refused_for_batch_statistics_and_auto_stays_off_on_cpu(cfg_factory, tmp_path):
    from spectral_gan.cli.common import config_error_in

    for norm in ("bn", "msn"):
        with pytest.raises(ConfigError) as err:  # raised where the module is built
            train(cfg_factory(*RING, f"norm={norm}", "steps=1", "speed.joint_d_pass=true",
                              run_dir=tmp_path / norm))
        assert "batch statistics" in str(config_error_in(err.value))
    auto = train(cfg_factory(*RING, "norm=sn", "steps=1", run_dir=tmp_path / "auto"))["module"]
    assert auto.joint_d_pass == "auto" and auto.joint_d_pass_active is False  # CPU: separate passes


def test_compile_keeps_the_training_step_and_falls_back_when_it_fails(cfg_factory, tmp_path):
    from torch._dynamo import register_backend

    @register_backend
    def always_fails(gm, example_inputs):  # a compiler that is missing or breaks
        raise RuntimeError("no compiler here")

    common = [*RING, "norm=sn", "steps=3", "seed=3", "trainer.deterministic=true"]
    eager = train(cfg_factory(*common, run_dir=tmp_path / "eager"))["module"]
    # dynamo tracing with eager kernels: the parametrization cache and the paused power
    # iteration must behave as without compile (same weights, same u after 3 steps)
    traced = train(cfg_factory(*common, "speed.compile=true", "speed.compile_backend=eager",
                               run_dir=tmp_path / "traced"))["module"]
    failing = train(cfg_factory(*common, "speed.compile=true", "speed.compile_backend=always_fails",
                                run_dir=tmp_path / "failing"))
    assert failing["gen_step"] == 3
    for other in (traced, failing["module"]):
        for (name, a), b in zip(eager.state_dict().items(), other.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_ema_update_matches_averaged_model():
    torch.manual_seed(0)
    g = DCGANGenerator((1, 32, 32), ch=4)
    module = GAN(g, DCGANDiscriminator((1, 32, 32), ch=4), get_loss("hinge"),
                 settings=GANSettings(ema=EMASettings(decay=0.9)))
    reference = AveragedModel(g, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    for i in range(3):
        with torch.no_grad():
            for p in g.parameters():
                p.add_(torch.randn_like(p))
        g(torch.randn(8, 128))  # BatchNorm running statistics move too
        ema.update(module.G_ema, g, 0.9, first=i == 0)
        reference.update_parameters(g)
    for (name, a), b in zip(module.G_ema.state_dict().items(), reference.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, msg=lambda m: f"{name}: {m}")
        elif name.endswith("num_batches_tracked"):  # a counter: ours copies it (AveragedModel
            assert a == g.state_dict()[name[len("module."):]]  # averages it in integers)
    assert module.G_ema.n_averaged == reference.n_averaged == 3
