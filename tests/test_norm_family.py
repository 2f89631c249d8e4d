"""BSN, MSN, OSN, gradient penalties, facets and diagnostics against their definitions."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.errors import ConfigError
from spectral_gan.models import DCGANDiscriminator, MLPDiscriminator
from spectral_gan.norms import (MeanCenter, NormHook, PowerIteration, bidirectional_spectral_norm,
                                mean_spectral_norm, optional_spectral_norm, power_iteration_paused,
                                spectral_norm, update_gates)
from spectral_gan.norms.power_iteration import SecondDimPowerIteration
from spectral_gan.norms.monitor import condition_numbers, spectral_report
from spectral_gan.norms.optional import gate_signals
from spectral_gan.norms.spectral import learned_scales
from spectral_gan.penalties import dragan, dragan_code, get_penalty, r1, wgan_gp


def sigma(w: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.linalg.matrix_norm(w.detach().movedim(dim, 0).flatten(1), ord=2)


def converge(layer: nn.Module, n: int = 300) -> torch.Tensor:
    layer.train()
    for _ in range(n):
        w = layer.weight
    return w.detach()


@pytest.mark.parametrize("make,dim", [(lambda: nn.Conv2d(3, 8, 3), 0),
                                      (lambda: nn.ConvTranspose2d(6, 4, 4, 2, 1), 1)])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_bsn_matches_mean_of_both_directions(make, dim, scale):
    torch.manual_seed(0)
    layer = make()
    raw = layer.weight.detach().clone()
    bidirectional_spectral_norm(layer, scale=scale)
    w = converge(layer)
    s1, s2 = sigma(raw, dim), sigma(raw, 1 - dim)
    torch.testing.assert_close(w, scale * raw / ((s1 + s2) / 2), rtol=1e-3, atol=1e-6)


def test_bsn_on_linear_equals_sn():
    torch.manual_seed(0)
    a = nn.Linear(10, 7)
    b = nn.Linear(10, 7)
    b.load_state_dict(a.state_dict())
    bidirectional_spectral_norm(a)
    spectral_norm(b)
    torch.testing.assert_close(converge(a), converge(b), rtol=1e-4, atol=1e-6)


def test_osn_clip_is_identity_below_threshold_and_scales_above():
    torch.manual_seed(0)
    small = nn.Linear(8, 8)
    with torch.no_grad():
        small.weight.mul_(0.5 / sigma(small.weight, 0))  # sigma = 0.5 < c = 1
    raw = small.weight.detach().clone()
    optional_spectral_norm(small, mode="clip", threshold=1.0)
    torch.testing.assert_close(converge(small), raw)

    big = nn.Conv2d(3, 6, 3)
    with torch.no_grad():
        big.weight.mul_(4.0 / sigma(big.weight, 0))  # sigma = 4 > c = 2
    raw = big.weight.detach().clone()
    optional_spectral_norm(big, mode="clip", threshold=2.0)
    torch.testing.assert_close(converge(big), raw * 2.0 / 4.0, rtol=1e-3, atol=1e-6)


def test_osn_adaptive_gate_has_hysteresis():
    layer = optional_spectral_norm(nn.Linear(4, 4), mode="full", gate="logit_gap", gate_on=2.0,
                                   gate_off=1.0)
    p = layer.parametrizations.weight[0]
    raw = layer.parametrizations.weight.original
    assert p.gate.item() == 0
    with power_iteration_paused(layer):
        torch.testing.assert_close(layer.weight, raw)  # closed gate: plain weight
    for signal, expected in [(1.5, 0), (2.5, 1), (1.5, 1), (0.9, 0), (1.5, 0)]:
        update_gates(layer, {"logit_gap": torch.tensor(signal)})
        assert p.gate.item() == expected, signal
    update_gates(layer, {"logit_gap": torch.tensor(3.0)})
    with power_iteration_paused(layer):
        s = p.power.sigma(raw)
        torch.testing.assert_close(layer.weight, raw / s)


def test_osn_rejects_bad_options():
    with pytest.raises(ConfigError, match="clip, full"):
        optional_spectral_norm(nn.Linear(2, 2), mode="sometimes")
    with pytest.raises(ConfigError, match="gate_off < gate_on"):
        optional_spectral_norm(nn.Linear(2, 2), gate="grad_norm", gate_on=1.0, gate_off=2.0)


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


def test_second_dim_power_iteration_matches_the_transposed_matrix():
    torch.manual_seed(0)
    w = torch.randn(6, 4, 3, 3)
    matrix = w.movedim(1, 0).flatten(1)  # (4, 54): what BSN's input view means
    u, v = torch.randn(4), torch.randn(54)
    torch.testing.assert_close(SecondDimPowerIteration.mv(w.flatten(2), v), matrix @ v)
    torch.testing.assert_close(SecondDimPowerIteration.mv_t(w.flatten(2), u), matrix.t() @ u)
    p = SecondDimPowerIteration(w.flatten(2), eps=1e-12, warmup_iterations=200)
    torch.testing.assert_close(p.sigma(w.flatten(2)), sigma(w, 1), rtol=1e-4, atol=1e-6)


def test_msn_does_not_center_the_logit_layer():
    d = MLPDiscriminator((2,), norm=NormHook("msn"))
    assert isinstance(d.net[-1].center, nn.Identity)
    assert isinstance(d.net[2].center, MeanCenter)  # fc1: a hidden layer after the input layer


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


# -- gradient penalties against hand-computed values on a linear D(x) = w.x + b ---------------

W = torch.tensor([3.0, 4.0])  # ||grad_x D|| = 5 everywhere


def linear_d(x: torch.Tensor) -> torch.Tensor:
    return x @ W + 1.0


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
    with pytest.raises(ConfigError, match="wgan_gp, r1, dragan"):
        get_penalty("l2")


# -- facets -----------------------------------------------------------------------------------

@pytest.mark.parametrize("feature,weight", [("batch", "none"), ("mean", "sn"), ("none", "msn")])
def test_batch_mixing_with_penalty_is_refused_with_a_reason(feature, weight):
    with pytest.raises(ConfigError, match="per-sample"):
        NormHook(weight=weight, feature=feature, penalty="wgan_gp")


def test_apply_to_selects_layers_by_name():
    d = DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("sn", apply_to=["conv0", "dense"]))
    normalized = {m.norm_name for m in d.modules()
                  if hasattr(m, "norm_name") and parametrize.is_parametrized(m, "weight")}
    assert normalized == {"conv0", "dense"}


def test_osn_layer_mask():
    d = DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("osn", layers=["conv6", "dense"]))
    normalized = {m.norm_name for m in d.modules()
                  if hasattr(m, "norm_name") and parametrize.is_parametrized(m, "weight")}
    assert normalized == {"conv6", "dense"}


# -- diagnostics ------------------------------------------------------------------------------

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


# -- issue 14: per-layer OSN gates, learnable scales, DRAGAN, penalties under fp16, zero weights --

def _mlp_with_sigmas(sigmas, **osn) -> nn.Sequential:
    """Linear layers whose raw weights have the given spectral norms, through an OSN hook."""
    torch.manual_seed(0)
    hook = NormHook("osn", **osn)
    layers = []
    for i, s in enumerate(sigmas):
        layer = nn.Linear(6, 6)
        with torch.no_grad():
            layer.weight.mul_(s / sigma(layer.weight, 0))
        layers.append(hook.wrap(layer, f"fc{i}"))
    net = nn.Sequential(*layers)
    converge(net[0], 1)
    for layer in net:  # settle each power iteration on its weight
        converge(layer, 200)
    return net


def _set_sigma(layer: nn.Module, s: float) -> None:
    raw = layer.parametrizations.weight.original
    with torch.no_grad():
        raw.mul_(s / sigma(raw, 0))
    converge(layer, 200)


def _gates(net: nn.Module) -> list[float]:
    return [layer.parametrizations.weight[0].gate.item() for layer in net]


def test_osn_sigma_gates_switch_per_layer_at_different_times():
    net = _mlp_with_sigmas([5.0, 0.5, 1.5], gate="sigma", gate_on=2.0, gate_off=1.0, mode="full")
    assert _gates(net) == [0, 0, 0]  # gates start closed
    update_gates(net, {"logit_gap": torch.tensor(0.0)})  # the gap is not what these gates follow
    assert _gates(net) == [1, 0, 0]  # only the layer whose own sigma is above 2 * threshold
    report = spectral_report(net)  # each layer's gate logged on its own
    assert [report[f"osn_gate/fc{i}"].item() for i in range(3)] == [1, 0, 0]
    _set_sigma(net[2], 3.0)  # layer 2 grows later: it opens then, layer 0 stays open
    update_gates(net, {})
    assert _gates(net) == [1, 0, 1]
    _set_sigma(net[0], 1.5)  # hysteresis: between gate_off and gate_on, layer 0 stays open
    _set_sigma(net[2], 0.8)  # below gate_off: layer 2 closes
    update_gates(net, {})
    assert _gates(net) == [1, 0, 0]
    with power_iteration_paused(net):
        raw = net[1].parametrizations.weight.original
        torch.testing.assert_close(net[1].weight, raw)  # closed: plain weight
        raw0 = net[0].parametrizations.weight.original
        torch.testing.assert_close(net[0].weight, raw0 / sigma(raw0, 0), rtol=1e-3, atol=1e-6)


def test_osn_grad_norm_gates_follow_each_layers_own_gradient():
    net = _mlp_with_sigmas([1.0, 1.0, 1.0], gate="grad_norm", gate_on=2.0, gate_off=1.0)
    for layer, g in zip(net, [5.0, 0.1, 3.0]):
        raw = layer.parametrizations.weight.original
        raw.grad = torch.full_like(raw, g / raw.numel() ** 0.5)  # ||grad|| = g
    update_gates(net, {})
    assert _gates(net) == [1, 0, 1]
    assert gate_signals(net) == {"layer_grad_norm"}


def test_osn_logit_gap_gate_moves_every_layer_together():
    net = _mlp_with_sigmas([5.0, 0.5], gate="logit_gap", gate_on=2.0, gate_off=1.0)
    update_gates(net, {"logit_gap": torch.tensor(3.0)})
    assert _gates(net) == [1, 1]
    assert gate_signals(net) == {"logit_gap"}


def test_osn_gate_signals_are_averaged_over_ranks(monkeypatch):
    """A stand-in for a 2-rank all_reduce: the other rank's logit gap is 0, so the mean is half
    of this rank's; the gate follows the mean, not the local value."""
    net = _mlp_with_sigmas([1.0], gate="logit_gap", gate_on=2.0, gate_off=1.0)
    dist = torch.distributed
    reduced = []
    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda *a: 2)
    monkeypatch.setattr(dist, "all_reduce", lambda t, op=None: reduced.append(t.clone()))
    update_gates(net, {"logit_gap": torch.tensor(3.0)})  # local 3 > 2, mean 1.5 < 2
    assert reduced and _gates(net) == [0]
    update_gates(net, {"logit_gap": torch.tensor(5.0)})  # mean 2.5 > 2
    assert _gates(net) == [1]


def _gloo_worker(rank: int, port: int, out: str) -> None:
    import os
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        net = _mlp_with_sigmas([1.0, 1.0], gate="logit_gap", gate_on=2.0, gate_off=1.0)
        gates = []
        for gap in ([3.0, 0.5], [3.0, 2.0], [1.2, 0.2]):  # local gaps differ per rank
            update_gates(net, {"logit_gap": torch.tensor(gap[rank])})
            gates.append(_gates(net))
        torch.save(gates, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_osn_gates_agree_across_two_gloo_ranks(tmp_path):
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gloo_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # means 1.75 (closed), 2.5 (open), 0.7 (closed); rank 0 alone would have opened at once
    assert ranks[0] == ranks[1] == [[0, 0], [1, 1], [0, 0]]


def test_unknown_osn_gate_lists_valid_ones():
    with pytest.raises(ConfigError, match="none, sigma, grad_norm, logit_gap"):
        NormHook("osn", gate="sometimes").wrap(nn.Linear(2, 2))


# -- learnable scales (BSN authors' gamma) ------------------------------------------------------

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


def test_bsn_learnable_scale_starts_at_c_instead_of_multiplying_by_it():
    torch.manual_seed(0)
    a, b = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)
    b.load_state_dict(a.state_dict())
    bidirectional_spectral_norm(a, scale=2.0)
    bidirectional_spectral_norm(b, scale=2.0, learnable_scale="per_layer")
    assert b.parametrizations.weight[1].gamma.item() == 2.0
    torch.testing.assert_close(converge(a), converge(b))


def test_unknown_learnable_scale_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid options are: none, shared, per_layer"):
        NormHook("sn", learnable_scale="everywhere").wrap(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="norm.weight=osn does not take option 'learnable_scale'"):
        NormHook("osn", learnable_scale="shared")


# -- DRAGAN: the paper's perturbation, and the reference code's ---------------------------------

def _recording_d(seen: list):
    w = torch.tensor([1.0, -2.0, 0.5, 0.0])

    def d(x):
        seen.append(x.detach().clone())
        return (x * w).sum(1)
    return d


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


# -- penalties under fp16: the GradScaler recipe -------------------------------------------------

def _tiny_d(factor: float):
    torch.manual_seed(0)
    lin = nn.Linear(16, 1)
    return lambda x: (lin(x) * factor).squeeze(1), lin


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


# -- all-zero weights: finite forward and backward -----------------------------------------------

ZERO_CASES = {
    "sn": lambda: spectral_norm(nn.Conv2d(2, 3, 3)),
    "bsn": lambda: bidirectional_spectral_norm(nn.Conv2d(2, 3, 3)),
    "bsn_linear": lambda: bidirectional_spectral_norm(nn.Linear(4, 3)),
    "msn": lambda: mean_spectral_norm(nn.Conv2d(2, 3, 3)),
    "osn_clip": lambda: optional_spectral_norm(nn.Conv2d(2, 3, 3)),
    "osn_full": lambda: optional_spectral_norm(nn.Conv2d(2, 3, 3), mode="full"),
    "sn_transposed": lambda: spectral_norm(nn.ConvTranspose2d(2, 3, 4, 2, 1)),
}


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
