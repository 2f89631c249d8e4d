"""Class-conditional models (models/conditional.py): the projection discriminator (Miyato & Koyama,
ICLR 2018) and conditional batch norm in the generator (de Vries et al. 2017); tiny widths."""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.errors import ConfigError
from spectral_gan.models import (DCGANDiscriminator, DCGANGenerator, MLPDiscriminator,
                                 MLPGenerator, ResNetDiscriminator, ResNetGenerator)
from spectral_gan.models.conditional import (CONDITIONAL_D, ConditionalBatchNorm2d,
                                             ProjectionHead, bind_labels, check_conditional_d)
from spectral_gan.norms import NormHook, normalize_all, power_iteration_paused
from spectral_gan.norms.lipschitz import LayerConstants, input_gradient_norms, lipschitz_report
from spectral_gan.norms.mean import MeanSpectralNorm
from spectral_gan.norms.monitor import activation_drift, spectral_report
from spectral_gan.norms.optional import OptionalSpectralNorm
from spectral_gan.norms.spectral import LearnableScale, SpectralNorm
from spectral_gan.penalties import r1, wgan_gp

IMAGE = (3, 32, 32)
CLASSES = 5


def _labels(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, CLASSES, (n,), generator=torch.Generator().manual_seed(seed))


def _embedding(d: nn.Module) -> nn.Embedding:
    """The class embedding layer itself (inside MSN's wrapper where there is one)."""
    embed = d.projection.embed
    return embed.layer if isinstance(embed, MeanSpectralNorm) else embed


# -- the projection logit ------------------------------------------------------------------------

def test_mlp_projection_logit_is_psi_plus_inner_product():
    torch.manual_seed(0)
    d = MLPDiscriminator((3,), hidden=8, depth=2, conditional="projection", num_classes=CLASSES)
    x, y = torch.randn(6, 3), _labels(6)
    h = d.net[:-1](x)
    expected = d.net[-1](h).squeeze(1) + (d.projection.embed.weight[y] * h).sum(1)
    assert torch.allclose(d(x, y), expected, atol=1e-6)
    assert d.projection.embed.weight.shape == (CLASSES, 8)
    # the class term changes the logit: other labels, other values
    assert not torch.allclose(d(x, (y + 1) % CLASSES), d(x, y))


@pytest.mark.parametrize("norm", ["sn", "msn"])
def test_dcgan_projection_logit_is_psi_plus_inner_product(norm):
    torch.manual_seed(0)
    d = DCGANDiscriminator(IMAGE, ch=2, norm=NormHook(norm), conditional="projection",
                           num_classes=CLASSES).eval()  # eval: the weights stay put between calls
    x, y = torch.randn(4, *IMAGE), _labels(4)
    h = d.features(x).flatten(1)
    v = d.projection.embed.weight  # the effective (normalized) embedding
    expected = d.head(h).squeeze(1) + (v[y] * h).sum(1)
    assert torch.allclose(d(x, y), expected, atol=1e-5)
    assert v.shape == (CLASSES, h.shape[1])


def test_resnet_projection_reads_the_pooled_features():
    torch.manual_seed(0)
    d = ResNetDiscriminator(IMAGE, ch=4, conditional="projection", num_classes=CLASSES).eval()
    x, y = torch.randn(3, *IMAGE), _labels(3)
    h = d.act(d.blocks(x)).sum(dim=(2, 3))
    expected = d.head(h).squeeze(1) + (d.projection.embed.weight[y] * h).sum(1)
    assert torch.allclose(d(x, y), expected, atol=1e-5)


# -- the embedding goes through the norm hook ---------------------------------------------------

@pytest.mark.parametrize("weight,kind", [("sn", SpectralNorm), ("bsn", SpectralNorm),
                                         ("osn", OptionalSpectralNorm), ("msn", SpectralNorm),
                                         ("sn_conv", SpectralNorm)])
def test_embedding_is_normalized_and_its_sigma_reported(weight, kind):
    torch.manual_seed(0)
    d = MLPDiscriminator((3,), hidden=8, depth=2, norm=NormHook(weight),
                         conditional="projection", num_classes=CLASSES)
    embed = _embedding(d)
    assert embed.norm_name == "embed" and embed.norm_output
    assert parametrize.is_parametrized(embed, "weight")
    assert isinstance(embed.parametrizations.weight[0], kind)
    if weight == "msn":  # part of the logit layer: not centered
        assert isinstance(d.projection.embed, MeanSpectralNorm)
        assert isinstance(d.projection.embed.center, nn.Identity)
    x, y = torch.randn(16, 3), _labels(16)
    for _ in range(5):
        d(x, y)
    report = spectral_report(d)
    assert "sigma/embed" in report
    raw = embed.parametrizations.weight.original.detach()
    assert report["sigma/embed"].item() == pytest.approx(
        torch.linalg.matrix_norm(raw, 2).item(), rel=1e-3)
    effective = torch.linalg.matrix_norm(embed.weight.detach(), 2).item()
    if weight == "osn":  # clip mode: divided only where sigma exceeds 1
        assert effective <= 1.0 + 1e-4
    else:
        assert effective == pytest.approx(1.0, abs=1e-4)


def test_embedding_takes_the_norm_options():
    torch.manual_seed(0)
    bssn = _embedding(MLPDiscriminator((3,), hidden=8, norm=NormHook("bsn", scale=2.0),
                                       conditional="projection", num_classes=CLASSES))
    assert torch.linalg.matrix_norm(bssn.weight.detach(), 2).item() == pytest.approx(2.0, rel=1e-3)
    learned = _embedding(MLPDiscriminator((3,), hidden=8,
                                          norm=NormHook("sn", learnable_scale="per_layer"),
                                          conditional="projection", num_classes=CLASSES))
    assert any(isinstance(p, LearnableScale) for p in learned.parametrizations.weight)
    plain = _embedding(MLPDiscriminator((3,), hidden=8, norm=NormHook("sn", apply_to=["fc*"]),
                                        conditional="projection", num_classes=CLASSES))
    assert not parametrize.is_parametrized(plain, "weight")  # apply_to decides, by its name


def test_generator_norm_leaves_conditional_batch_norm_alone():
    g = normalize_all(DCGANGenerator(IMAGE, ch=4, conditional=True, num_classes=CLASSES),
                      NormHook("sn"))
    cbns = [m for m in g.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(cbns) == 4
    assert all(not parametrize.is_parametrized(m.gamma) for m in cbns)
    assert all(torch.equal(m.gamma.weight, torch.ones_like(m.gamma.weight)) for m in cbns)


# -- conditional batch norm ---------------------------------------------------------------------

def test_conditional_batch_norm_starts_as_plain_batch_norm_and_depends_on_the_class():
    torch.manual_seed(0)
    cbn, bn = ConditionalBatchNorm2d(6, CLASSES), nn.BatchNorm2d(6)
    assert torch.equal(cbn.gamma.weight, torch.ones(CLASSES, 6))
    assert torch.equal(cbn.beta.weight, torch.zeros(CLASSES, 6))
    x, y = torch.randn(8, 6, 4, 4) * 3 + 1, _labels(8)
    assert torch.allclose(cbn(x, y), bn(x), atol=1e-5)
    assert torch.allclose(cbn.bn.running_mean, bn.running_mean)
    assert torch.allclose(cbn.bn.running_var, bn.running_var)
    with torch.no_grad():
        cbn.gamma.weight.normal_()
        cbn.beta.weight.normal_()
    same = torch.zeros(8, dtype=torch.long)
    other = torch.ones(8, dtype=torch.long)
    assert not torch.allclose(cbn(x, same), cbn(x, other))
    # each sample uses its own class's gain and bias
    out = cbn.eval()(x, y)
    normed = cbn.bn(x)
    assert torch.allclose(out[3], normed[3] * cbn.gamma.weight[y[3]].view(6, 1, 1)
                          + cbn.beta.weight[y[3]].view(6, 1, 1), atol=1e-6)


@pytest.mark.parametrize("G", [DCGANGenerator, ResNetGenerator])
def test_conditional_generator_starts_as_its_unconditional_twin(G):
    torch.manual_seed(0)
    plain = G(IMAGE, ch=4)
    torch.manual_seed(0)
    cond = G(IMAGE, ch=4, conditional=True, num_classes=CLASSES)
    z, y = torch.randn(4, plain.z_dim), _labels(4)
    assert torch.allclose(cond(z, y), plain(z), atol=1e-5)
    bns = [m for m in cond.modules() if isinstance(m, nn.BatchNorm2d)]
    cbn_insides = {id(m.bn) for m in cond.modules() if isinstance(m, ConditionalBatchNorm2d)}
    plain_bns = [m for m in bns if id(m) not in cbn_insides]
    assert all(not m.affine for m in bns if id(m) in cbn_insides)
    # every BN is the inside of a CBN, but the ResNet's last (the authors' plain b5)
    assert len(plain_bns) == (1 if G is ResNetGenerator else 0)
    with torch.no_grad():
        for m in cond.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                m.gamma.weight.normal_(1, 0.5)
    assert not torch.allclose(cond(z, torch.zeros_like(y)), cond(z, torch.ones_like(y)))


def test_resnet_generator_conditions_both_block_norms_and_not_the_last():
    """As SNGAN-projection's gen_models/resnet_32.py: b1, b2 of each block are categorical
    conditional BNs, the last one (b5) a plain BatchNormalization; chainer's eps 2e-5."""
    g = ResNetGenerator(IMAGE, ch=4, conditional=True, num_classes=CLASSES)
    assert all(isinstance(b.bn1, ConditionalBatchNorm2d) and isinstance(b.bn2, ConditionalBatchNorm2d)
               for b in g.blocks)
    assert type(g.out[0]) is nn.BatchNorm2d and g.out[0].affine
    assert sum(isinstance(m, ConditionalBatchNorm2d) for m in g.modules()) == 2 * len(g.blocks)
    assert {m.eps for m in g.modules() if isinstance(m, nn.BatchNorm2d)} == {2e-5}
    earlier = ResNetGenerator(IMAGE, ch=4, conditional=True, num_classes=CLASSES,
                              last_bn="conditional", bn_eps=1e-5)
    assert isinstance(earlier.out[0], ConditionalBatchNorm2d)
    with pytest.raises(ConfigError, match="plain"):
        ResNetGenerator(IMAGE, ch=4, last_bn="sometimes")


@pytest.mark.parametrize("G,D", [(DCGANGenerator, DCGANDiscriminator),
                                 (ResNetGenerator, ResNetDiscriminator)])
def test_conditional_shapes_at_32px(G, D):
    g = G(IMAGE, ch=4, conditional=True, num_classes=CLASSES)
    d = D(IMAGE, ch=4, norm=NormHook("sn"), conditional="projection", num_classes=CLASSES)
    assert (g.conditional, g.num_classes, d.conditional, d.num_classes) == (
        True, CLASSES, "projection", CLASSES)
    y = _labels(3)
    x = g(torch.randn(3, g.z_dim), y)
    assert x.shape == (3, *IMAGE) and x.abs().max() <= 1.0
    out = d(x, y)
    assert out.shape == (3,)
    out.sum().backward()
    assert _embedding(d).parametrizations.weight.original.grad is not None
    assert all(m.gamma.weight.grad is not None for m in g.modules()
               if isinstance(m, ConditionalBatchNorm2d))


# -- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize("G", [DCGANGenerator, ResNetGenerator])
@pytest.mark.parametrize("num_classes", [None, 1])
def test_conditional_generator_needs_classes(G, num_classes):
    with pytest.raises(ConfigError, match="conditional generator needs labeled data"):
        G(IMAGE, ch=4, conditional=True, num_classes=num_classes)


@pytest.mark.parametrize("D", [DCGANDiscriminator, ResNetDiscriminator, MLPDiscriminator])
def test_projection_needs_classes(D):
    shape = (2,) if D is MLPDiscriminator else IMAGE
    with pytest.raises(ConfigError, match="needs labeled data.*discriminator.conditional=none"):
        D(shape, conditional="projection")


def test_projection_refuses_packing():
    with pytest.raises(ConfigError, match="pack=2.*different"):
        MLPDiscriminator((2,), pack=2, conditional="projection", num_classes=CLASSES)
    assert MLPDiscriminator((2,), pack=2, num_classes=CLASSES).pack == 2  # unconditional: fine


def test_mlp_generator_is_not_conditional():
    with pytest.raises(ConfigError, match="only generator=dcgan|resnet are class-conditional"):
        MLPGenerator((2,), conditional=True, num_classes=CLASSES)
    g = MLPGenerator((2,), num_classes=CLASSES)
    z = torch.randn(3, g.z_dim)
    assert (g.conditional, g.num_classes) == (False, None)
    assert torch.equal(g(z, _labels(3)), g(z))  # labels ignored


@pytest.mark.parametrize("D", [DCGANDiscriminator, ResNetDiscriminator, MLPDiscriminator])
def test_bad_conditional_value_lists_the_valid_ones(D):
    shape = (2,) if D is MLPDiscriminator else IMAGE
    for bad in ("acgan", True, None):
        with pytest.raises(ConfigError, match="valid options are: none, projection"):
            D(shape, conditional=bad, num_classes=CLASSES)
    assert CONDITIONAL_D == ("none", "projection")
    assert check_conditional_d("projection") == "projection"
    with pytest.raises(ConfigError, match="true or false"):
        DCGANGenerator(IMAGE, ch=4, conditional="projection", num_classes=CLASSES)


def test_missing_or_misshapen_labels_are_refused():
    g = DCGANGenerator(IMAGE, ch=4, conditional=True, num_classes=CLASSES)
    with pytest.raises(ValueError, match="this generator is class-conditional: pass labels y"):
        g(torch.randn(2, g.z_dim))
    with pytest.raises(ValueError, match=r"labels of shape \(2,\)"):
        g(torch.randn(2, g.z_dim), torch.tensor([1]))  # would broadcast silently otherwise
    for D, shape in [(DCGANDiscriminator, IMAGE), (ResNetDiscriminator, IMAGE),
                     (MLPDiscriminator, (2,))]:
        kw = {} if D is MLPDiscriminator else {"ch": 4}
        d = D(shape, conditional="projection", num_classes=CLASSES, **kw)
        with pytest.raises(ValueError, match="this discriminator is class-conditional: pass labels y"):
            d(torch.randn(2, *shape))


# -- unconditional models are unchanged ----------------------------------------------------------

# Keys of an unconditional DCGAN generator (ch=8) and MLP discriminator, listed before the
# conditional variants existed: existing checkpoints must keep loading.
DCGAN_G_KEYS = {"dense.weight", "dense.bias", "net.11.weight", "net.11.bias"} | {
    f"net.{i}.{k}" for i in (0, 3, 6, 9)
    for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")} | {
    f"net.{i}.{k}" for i in (2, 5, 8) for k in ("weight", "bias")}
MLP_D_SN_KEYS = {f"net.{i}.{k}" for i in (0, 2, 5, 8) for k in (
    "bias", "parametrizations.weight.original", "parametrizations.weight.0.power.u",
    "parametrizations.weight.0.power.v")}


def test_unconditional_state_dict_keys_are_the_old_ones():
    assert set(DCGANGenerator(IMAGE, ch=8).state_dict()) == DCGAN_G_KEYS
    assert set(MLPDiscriminator((2,), norm=NormHook("sn")).state_dict()) == MLP_D_SN_KEYS


@pytest.mark.parametrize("make", [
    lambda **kw: DCGANGenerator(IMAGE, ch=4, **kw),
    lambda **kw: ResNetGenerator(IMAGE, ch=4, **kw),
    lambda **kw: MLPGenerator((2,), **kw),
])
def test_unconditional_generators_build_as_before(make):
    torch.manual_seed(0)
    default = make()
    torch.manual_seed(0)
    explicit = make(conditional=False, num_classes=10)  # the training code passes num_classes
    assert (explicit.conditional, explicit.num_classes) == (False, None)
    assert default.state_dict().keys() == explicit.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(),
                                                 explicit.state_dict().values()))
    assert not any(isinstance(m, (ConditionalBatchNorm2d, nn.Embedding)) for m in explicit.modules())
    z = torch.randn(3, default.z_dim)
    assert torch.equal(default(z), explicit(z, _labels(3)))  # labels ignored


@pytest.mark.parametrize("make", [
    lambda **kw: DCGANDiscriminator(IMAGE, ch=4, norm=NormHook("sn"), **kw),
    lambda **kw: ResNetDiscriminator(IMAGE, ch=4, norm=NormHook("msn"), **kw),
    lambda **kw: MLPDiscriminator((2,), norm=NormHook("bsn"), **kw),
])
def test_unconditional_discriminators_build_as_before(make):
    torch.manual_seed(0)
    default = make()
    torch.manual_seed(0)
    explicit = make(conditional="none", num_classes=10)
    assert (explicit.conditional, explicit.num_classes) == ("none", None)
    keys = list(explicit.state_dict())
    assert keys == list(default.state_dict())
    assert not any("embed" in k or "projection" in k for k in keys)
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(),
                                                 explicit.state_dict().values()))


# -- Lipschitz bound and diagnostics through bind_labels ----------------------------------------

def test_projection_bound_adds_the_embedding_to_the_head():
    torch.manual_seed(0)
    d = MLPDiscriminator((3,), hidden=8, depth=1, conditional="projection", num_classes=CLASSES)
    k = LayerConstants(None)
    w1, w2 = d.net[0].weight.detach(), d.net[-1].weight.detach()
    v = d.projection.embed.weight.detach()
    expected = torch.linalg.matrix_norm(w1, 2) * (w2.norm() + torch.linalg.matrix_norm(v, 2))
    assert d.lipschitz_bound(k).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("make,shape", [
    (lambda: MLPDiscriminator((3,), hidden=8, depth=2, conditional="projection",
                              num_classes=CLASSES), (3,)),
    (lambda: DCGANDiscriminator((1, 32, 32), ch=2, norm=NormHook("sn"), conditional="projection",
                                num_classes=CLASSES), (1, 32, 32)),
    (lambda: ResNetDiscriminator((1, 32, 32), ch=2, norm=NormHook("msn"),
                                 conditional="projection", num_classes=CLASSES), (1, 32, 32)),
])
def test_projection_bound_exceeds_the_input_gradients_for_a_fixed_label(make, shape):
    torch.manual_seed(0)
    d = make()
    x = torch.randn(8, *shape)
    d(x, _labels(8))  # a training step's batch: running statistics (MSN) move off their start
    # The training logs' setting (a few power-iteration steps per call, warm-started across the
    # labels): within a few percent of the converged operator norms, and these bounds sit orders
    # of magnitude above the gradients of a layer-by-layer product at init.
    constants = LayerConstants()
    for label in range(CLASSES):
        bound_d = bind_labels(d, torch.tensor(label))
        report = lipschitz_report(bound_d, x, torch.randn(8, *shape), constants)
        bound = report["lipschitz/bound_layerwise"].item()
        assert 0 < bound < float("inf")
        assert bound >= report["lipschitz/grad_max"].item()
        d.eval()
        points = torch.randn(256, *shape) * 2
        assert bound >= input_gradient_norms(bind_labels(d, torch.tensor(label)), points).max().item()
        d.train()


def test_bind_labels_serves_the_diagnostics():
    torch.manual_seed(0)
    d = DCGANDiscriminator(IMAGE, ch=2, norm=NormHook("msn"), conditional="projection",
                           num_classes=CLASSES)
    real, fake, y = torch.randn(4, *IMAGE), torch.randn(4, *IMAGE), _labels(4)
    wrapped = bind_labels(d, y)
    with power_iteration_paused(d):  # in training mode each call advances the power iteration
        assert torch.equal(wrapped(real), d(real, y)) and wrapped.training
    running = d.features[8].center.running_mean.clone()  # conv3: centred
    drift = activation_drift(wrapped, [real, fake])
    assert "drift/conv0" in drift and "drift/embed" not in drift and "drift/dense" not in drift
    assert torch.equal(running, d.features[8].center.running_mean)  # no side effect
    # lipschitz_report stacks real, fake and interpolations: each gets the same n labels
    report = lipschitz_report(wrapped, real, fake, LayerConstants())
    assert report["lipschitz/bound_layerwise"] >= report["lipschitz/grad_max"]
    assert "sigma_op/conv0" in report
    assert d.training  # the report restores the mode it found
    d.eval()
    lipschitz_report(bind_labels(d, y), real, fake, LayerConstants(2))
    assert not d.training
    assert {"sigma/embed", "sigma/dense", "sigma/conv0"} <= set(spectral_report(wrapped))
    with pytest.raises(ValueError, match="length 4.*batch of 6"):
        wrapped(torch.randn(6, *IMAGE))


def test_gradient_penalties_take_a_labeled_discriminator():
    torch.manual_seed(0)
    d = MLPDiscriminator((2,), hidden=8, conditional="projection", num_classes=CLASSES)
    real, fake, y = torch.randn(6, 2), torch.randn(6, 2), _labels(6)
    for fn in (functools.partial(d, y=y), bind_labels(d, y)):
        assert wgan_gp(fn, real, fake).item() > 0
        assert r1(fn, real).item() > 0


def test_projection_head_holds_a_wrapped_embedding():
    hook = NormHook("sn")
    head = ProjectionHead(CLASSES, 7, hook)
    assert hook.wrapped["embed"] is head.embed
    h, y = torch.randn(3, 7), _labels(3)
    assert torch.allclose(head(h, y), (head.embed.weight[y] * h).sum(1))
