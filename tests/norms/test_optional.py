"""spectral_gan/norms/optional.py: OSN, SN clipping with a layer mask and adaptive per-layer gates."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.errors import ConfigError
from spectral_gan.models import DCGANDiscriminator
from spectral_gan.norms import (NormHook, optional_spectral_norm, power_iteration_paused,
                                update_gates)
from spectral_gan.norms.monitor import spectral_report
from spectral_gan.norms.optional import gate_signals
from tests.norms.weights import converge, sigma


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


def test_osn_layer_mask():
    d = DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("osn", layers=["conv6", "dense"]))
    normalized = {m.norm_name for m in d.modules()
                  if hasattr(m, "norm_name") and parametrize.is_parametrized(m, "weight")}
    assert normalized == {"conv6", "dense"}


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
