"""benchmarks/peers.py and peer_loops.py: the peers' loops run, their SN normalizes, the JSON has
its fields (the timings themselves are never asserted)."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import peer_loops  # noqa: E402
import peers  # noqa: E402


@pytest.mark.parametrize("name,sn", [("studiogan", "torch"), ("mimicry", "torch"), ("mimicry", "own")])
@pytest.mark.parametrize("arch,widths", [("cnn", (8, 8)), ("resnet", (16, 8))])
def test_peer_sn_brings_sigma_to_one_after_a_few_iterations(name, sn, arch, widths):
    peer = peer_loops.build_peer(name, arch, torch.device("cpu"), "fp32", batch=8, widths=widths,
                                 mimicry_sn=sn)
    before = [p.detach().clone() for p in (*peer.G.parameters(), *peer.D.parameters())]
    for _ in range(6):  # 11 D forwards, so 11 power iterations, per iteration
        loss_d, loss_g = peer.iteration()
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    after = [p.detach() for p in (*peer.G.parameters(), *peer.D.parameters())]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # G and D both trained
    weights = peer_loops.sn_weights(peer.D)
    assert len(weights) == (8 if arch == "cnn" else 11)  # every conv and the dense layer
    sigmas = [torch.linalg.matrix_norm(w.flatten(1), 2).item() for w in weights]
    assert all(0.99 < s < 1.1 for s in sigmas), sigmas


def test_peers_settings_are_restored_for_ours():
    saved = torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    with peers.peer_settings("studiogan"):
        assert torch.backends.cudnn.benchmark and torch.get_float32_matmul_precision() == "highest"
    assert torch.get_float32_matmul_precision() == "high"
    torch.backends.cudnn.benchmark = saved[0]
    torch.set_float32_matmul_precision(saved[1])


def test_quick_run_times_each_loop_and_writes_the_json(tmp_path):
    out = tmp_path / "peers.json"
    peers.main(["--device", "cpu", "--quick", "--precisions", "fp32", "--json", str(out)])
    r = json.loads(out.read_text())
    for key in ("date", "device", "torch", "quick", "batch", "n_dis", "steps", "rounds", "widths",
                "bf16", "unit", "goal_peer_over_ours", "results"):
        assert key in r, key
    assert r["quick"] and r["n_dis"] == 5
    for arch in ("cnn", "resnet"):
        e = r["results"][arch]["fp32"]
        assert set(e["s_per_g_step"]) == {"studiogan", "mimicry", "ours"}
        assert all(s > 0 for s in e["s_per_g_step"].values())
        assert set(e["peer_over_ours"]) == {"studiogan", "mimicry"}
        assert isinstance(e["goal_met"], bool)
    assert "| SNGAN ResNet-32 | fp32 |" in peers.markdown(r)
