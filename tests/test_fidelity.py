"""Each preset and model against the reference it names (issue 31; docs/fidelity.md lists them).

The reference values below are written from the authors' published configs and code:
- SNGAN-projection (pfnet-research/sngan_projection): configs/sn_cifar10.yml and
  sn_cifar10_unconditional.yml (batchsize 64, iteration 50000, iteration_decay_start 0, Adam
  alpha 2e-4, beta1 0, beta2 0.9, n_dis 5, n_gen_samples 128, hinge), train.py (LinearShift of
  alpha to 0), gen_models/resnet_32.py (last BatchNormalization plain), dis_models/snresnet_32.py
  (l5 nobias), resblocks (GlorotUniform(sqrt 2) on residual convs, GlorotUniform on the rest);
- the SN paper's standard CNN (Miyato et al. 2018, Table 1 setting B; chainer-gan-lib wscale 0.02);
- PacGAN (fjxmlzn/PacGAN): one generator call per packing slot.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spectral_gan.checkpoints.load import _earlier_defaults
from spectral_gan.models import MLPDiscriminator, MLPGenerator
from spectral_gan.models.common import initialize
from spectral_gan.models.conditional import ConditionalBatchNorm2d
from spectral_gan.models.resnet import ResNetDiscriminator, ResNetGenerator
from spectral_gan.training.gan import GAN
from spectral_gan.losses import get_loss
from spectral_gan.training.settings import GANSettings
from spectral_gan.training.run import train
from tests.test_train import scalars

SNGAN_PROJECTION = {"steps": 50000, "n_dis": 5, "batch_size": 64, "g_batch_size": 128,
                    "lr_decay": "linear", "lr_decay_start": 0, "lr": 2e-4, "betas": [0.0, 0.9],
                    "loss": "hinge", "init": "sngan", "ema": 0.0}
SN_PAPER_CNN_B = {"steps": 100000, "n_dis": 1, "batch_size": 64, "g_batch_size": None,
                  "lr_decay": "none", "lr": 1e-4, "betas": [0.5, 0.999], "init": "normal_0.02",
                  "ema": 0.0}


@pytest.mark.parametrize("preset", ["sngan_cifar10_resnet", "sngan_cifar10_cond_resnet"])
def test_resnet_presets_are_the_authors_configs(cfg_factory, preset):
    cfg = cfg_factory(f"experiment={preset}", fast=False)
    ref = SNGAN_PROJECTION
    assert (cfg.steps, cfg.n_dis, cfg.batch_size, cfg.g_batch_size) == (
        ref["steps"], ref["n_dis"], ref["batch_size"], ref["g_batch_size"])
    assert (cfg.lr_decay, cfg.lr_decay_start) == (ref["lr_decay"], ref["lr_decay_start"])
    for net in ("g", "d"):
        assert cfg.optimizer[net].lr == ref["lr"] and list(cfg.optimizer[net].betas) == ref["betas"]
    assert cfg.loss.name == ref["loss"]
    assert cfg.generator.init == cfg.discriminator.init == ref["init"]
    assert cfg.ema.decay == ref["ema"]
    assert cfg.generator.last_bn == "plain" and cfg.generator.bn_eps == 2e-5
    assert cfg.discriminator.head_bias is False
    assert cfg.norm.weight == "sn"
    if preset.endswith("cond_resnet"):
        assert cfg.generator.conditional is True and cfg.discriminator.conditional == "projection"


@pytest.mark.parametrize("preset,norm", [("sngan_cifar10_cnn", "sn"), ("sngan_stl10_cnn", "sn"),
                                         ("bn_cifar10_cnn", "none"), ("wgangp_cifar10_cnn", "none")])
def test_cnn_presets_are_the_sn_papers(cfg_factory, preset, norm):
    cfg = cfg_factory(f"experiment={preset}", fast=False)
    ref = SN_PAPER_CNN_B
    assert (cfg.steps, cfg.batch_size, cfg.g_batch_size, cfg.lr_decay) == (
        ref["steps"], ref["batch_size"], ref["g_batch_size"], ref["lr_decay"])
    assert cfg.generator.init == cfg.discriminator.init == ref["init"]
    assert cfg.ema.decay == ref["ema"] and cfg.norm.weight == norm
    if preset == "wgangp_cifar10_cnn":  # the paper's WGAN-GP baseline: setting A's optimizer
        assert cfg.n_dis == 5 and list(cfg.optimizer.d.betas) == [0.5, 0.9]
    else:
        assert cfg.n_dis == ref["n_dis"] and list(cfg.optimizer.d.betas) == ref["betas"]


def test_linear_lr_decay_reaches_zero_at_the_last_generator_step(cfg_factory, tmp_path):
    """chainer's LinearShift(alpha, (lr, 0), (0, steps)): after k of n updates lr (1 - k/n)."""
    cfg = cfg_factory("data=ring", "generator=mlp", "discriminator=mlp", "steps=4", "n_dis=2",
                      "batch_size=16", "lr_decay=linear", "optimizer.g.lr=2e-4",
                      "optimizer.d.lr=1e-4")
    assert train(cfg)["gen_step"] == 4
    logged = scalars(str(tmp_path))
    for tag, lr in (("lr/g", 2e-4), ("lr/d", 1e-4)):
        got = [v for _, v in logged[tag]]
        assert got == pytest.approx([lr * (1 - k / 4) for k in range(1, 5)], rel=1e-5, abs=1e-12)


def test_linear_lr_decay_waits_for_its_start(cfg_factory, tmp_path):
    cfg = cfg_factory("data=ring", "generator=mlp", "discriminator=mlp", "steps=4",
                      "batch_size=16", "lr_decay=linear", "lr_decay_start=2", "optimizer.g.lr=1e-4")
    train(cfg)
    got = [v for _, v in scalars(str(tmp_path))["lr/g"]]
    assert got == pytest.approx([1e-4, 1e-4, 0.5e-4, 0.0], rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("bad,match", [("lr_decay=cosine", "none, linear"),
                                       ("g_batch_size=0", "g_batch_size"),
                                       ("pack_generator=twice", "per_slot, joint")])
def test_bad_schedule_values_are_one_sentence(cfg_factory, bad, match):
    from spectral_gan.errors import ConfigError
    with pytest.raises(ConfigError, match=match):
        GANSettings.from_config(cfg_factory(bad))


def _gan(g, d, **settings):
    return GAN(g, d, get_loss("ns"), settings=GANSettings(**settings))


def test_generator_update_draws_g_batch_size_samples(cfg_factory, monkeypatch):
    sizes = []
    original = GAN._generate

    def record(self, n, y):
        sizes.append(n)
        return original(self, n, y)

    monkeypatch.setattr(GAN, "_generate", record)
    cfg = cfg_factory("data=ring", "generator=mlp", "discriminator=mlp", "steps=2", "n_dis=2",
                      "batch_size=16", "g_batch_size=40")
    train(cfg)
    assert sizes == [16, 16, 40, 16, 16, 40]  # per generator step: n_dis D fakes, then G's


def test_g_batch_size_must_fill_whole_tuples():
    from spectral_gan.errors import ConfigError
    g = MLPGenerator((2,), z_dim=4, hidden=8, depth=1)
    with pytest.raises(ConfigError, match="multiple of discriminator.pack=4"):
        _gan(g, MLPDiscriminator((2,), hidden=8, depth=1, pack=4), g_batch_size=10)


def test_packed_fakes_come_from_one_generator_call_per_slot():
    """PacGAN's code concatenates m generator batches: batch norm sees B/m samples per call, and
    the i-th sample of every tuple comes from the i-th call."""
    torch.manual_seed(0)
    g = MLPGenerator((2,), z_dim=4, hidden=8, depth=2, batch_norm=True)
    d = MLPDiscriminator((2,), hidden=8, depth=2, pack=4)
    rows = []
    bn = next(m for m in g.modules() if isinstance(m, nn.BatchNorm1d))
    bn.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    per_slot, joint = _gan(g, d), _gan(g, d, pack_generator="joint")
    torch.manual_seed(1)
    fake = per_slot._generate(40, None)
    assert fake.shape == (40, 2) and rows == [10, 10, 10, 10]
    rows.clear()
    joint._generate(40, None)
    assert rows == [40]
    # without batch statistics the two are the same function of the same noise
    plain = MLPGenerator((2,), z_dim=4, hidden=8, depth=2)
    torch.manual_seed(2)
    a = _gan(plain, d)._generate(40, None)
    torch.manual_seed(2)
    b = _gan(plain, d, pack_generator="joint")._generate(40, None)
    torch.testing.assert_close(a, b)
    # slot k of tuple i is sample i of call k: the tuples interleave the calls
    torch.manual_seed(3)
    z = torch.randn(40, 4)
    calls = [g(z[k::4]) for k in range(4)]
    torch.manual_seed(3)
    torch.testing.assert_close(per_slot._generate(40, None)[1::4], calls[1])


def test_conditional_batch_norm_is_the_formula():
    """de Vries et al. 2017: gamma_y * (x - mu_B) / sqrt(var_B + eps) + beta_y, biased batch
    variance over (N, H, W), one gain and bias row per class."""
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, 5, eps=2e-5)
    with torch.no_grad():
        cbn.gamma.weight.normal_(1, 0.3)
        cbn.beta.weight.normal_(0, 0.3)
    x, y = torch.randn(6, 3, 4, 4) * 2 + 1, torch.tensor([0, 1, 2, 3, 4, 0])
    mu = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    want = ((x - mu) / torch.sqrt(var + 2e-5) * cbn.gamma.weight[y].view(6, 3, 1, 1)
            + cbn.beta.weight[y].view(6, 3, 1, 1))
    torch.testing.assert_close(cbn(x, y), want, rtol=1e-5, atol=1e-5)


def test_resnet_projection_discriminator_is_the_authors_formula():
    """snresnet_32: h = sum_{H,W} relu(blocks(x)); D(x, y) = l5(h) + <l_y(y), h>, l5 without bias."""
    torch.manual_seed(0)
    d = ResNetDiscriminator((3, 32, 32), ch=4, conditional="projection", num_classes=3).eval()
    assert d.head.bias is None
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    h = torch.relu(d.blocks(x)).sum(dim=(2, 3))
    want = h @ d.head.weight[0] + (d.projection.embed.weight[y] * h).sum(1)
    torch.testing.assert_close(d(x, y), want, rtol=1e-5, atol=1e-5)
    assert ResNetDiscriminator((3, 32, 32), ch=4, head_bias=True).head.bias is not None


def test_sngan_init_is_glorot_with_gain_sqrt2_on_residual_convolutions():
    torch.manual_seed(0)
    g = ResNetGenerator((3, 32, 32), ch=32, init="sngan")
    for conv, gain in ((g.blocks[0].conv1, math.sqrt(2)), (g.blocks[0].shortcut, 1.0),
                       (g.out[2], 1.0)):
        fan_in = conv.weight[0].numel()
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        bound = gain * math.sqrt(6 / (fan_in + fan_out))
        assert conv.weight.abs().max() <= bound
        assert conv.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    layer = initialize(nn.Linear(4, 4), "sngan")
    assert torch.equal(layer.bias, torch.zeros(4))


def test_checkpoints_written_before_the_authors_defaults_rebuild_as_trained():
    from omegaconf import OmegaConf
    old = OmegaConf.create({"_target_": "spectral_gan.models.ResNetGenerator", "conditional": True})
    assert _earlier_defaults(old) == {"last_bn": "conditional", "bn_eps": 1e-5}
    new = OmegaConf.create({"_target_": "spectral_gan.models.ResNetGenerator", "last_bn": "plain",
                            "bn_eps": 2e-5})
    assert _earlier_defaults(new) == {}
    assert _earlier_defaults(OmegaConf.create({"_target_": "spectral_gan.models.DCGANGenerator"})) == {}


@pytest.mark.parametrize("scale_to", [0.5, 4.0])  # sigma below and above the threshold c = 2
def test_osn_clip_forward_and_backward_match_the_formula(scale_to):
    """Clip mode: W_eff = W / max(1, sigma/c) with sigma = u^T W v (u, v the power iteration's
    vectors, constants as in SN); the max's branch carries no gradient, the division does."""
    from spectral_gan.norms import optional_spectral_norm, power_iteration_paused
    torch.manual_seed(0)
    layer = nn.Linear(6, 5)
    with torch.no_grad():
        layer.weight.mul_(scale_to / torch.linalg.matrix_norm(layer.weight, 2))
    optional_spectral_norm(layer, mode="clip", threshold=2.0)
    for _ in range(50):  # converge u, v
        layer.weight
    param = layer.parametrizations.weight
    w = param.original.detach().clone().requires_grad_()
    x = torch.randn(7, 6)
    with power_iteration_paused(layer):
        got = layer(x)
        (got ** 2).sum().backward()
        power = param[0].power
        sigma = power.u @ w @ power.v
        want_w = w / torch.clamp(sigma.detach() / 2.0, min=1.0) if scale_to < 2.0 \
            else w * 2.0 / sigma
        want = x @ want_w.t() + layer.bias.detach()
        (want ** 2).sum().backward()
    torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(param.original.grad, w.grad, rtol=1e-4, atol=1e-6)
