import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.errors import ConfigError
from spectral_gan.norms import NormHook, PowerIteration, power_iteration_paused, spectral_norm


def true_sigma(weight: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.linalg.matrix_norm(weight.detach().movedim(dim, 0).flatten(1), ord=2)


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
    expected = raw / true_sigma(raw, dim)
    torch.testing.assert_close(w.detach(), expected, rtol=1e-3, atol=1e-5)
    # the normalized weight has spectral norm 1
    assert true_sigma(w, dim).item() == pytest.approx(1.0, abs=1e-3)


def test_conv_transpose_uses_output_dim():
    layer = spectral_norm(nn.ConvTranspose2d(8, 5, 4))
    power = layer.parametrizations.weight[0].power
    assert power.u.shape == (5,)  # rows are the output channels (dim 1)
    assert power.v.shape == (8 * 4 * 4,)


def test_eval_mode_and_pause_do_not_iterate():
    layer = spectral_norm(nn.Linear(6, 4))
    power = layer.parametrizations.weight[0].power
    u0 = power.u.clone()
    layer.eval()
    w_eval = layer.weight
    assert torch.equal(power.u, u0)
    torch.testing.assert_close(w_eval, layer.parametrizations.weight.original / (u0 @ layer.parametrizations.weight.original @ power.v))
    layer.train()
    with power_iteration_paused(layer):
        layer.weight
    assert torch.equal(power.u, u0)
    layer.weight
    assert not torch.equal(power.u, u0)


def test_cached_evaluates_once_for_many_forwards(monkeypatch):
    calls = []
    orig = PowerIteration.step
    monkeypatch.setattr(PowerIteration, "step", lambda self, m, n: (calls.append(n), orig(self, m, n)))
    layer = spectral_norm(nn.Linear(6, 4))
    calls.clear()  # construction: warm-up iterations and the registration check
    x = torch.randn(3, 6)
    with parametrize.cached():
        out = layer(x).sum() + layer(x).sum() + layer(x).sum()
    out.backward()
    assert calls == [1]
    assert layer.parametrizations.weight.original.grad is not None


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
        sigma = power.sigma(layer.parametrizations.weight.original)
    assert y.dtype == dtype  # the layer itself does run in low precision
    assert power.u.dtype == power.v.dtype == sigma.dtype == torch.float32


def test_hook_rejects_unknown_norm_with_valid_options():
    from spectral_gan.norms.registry import WEIGHT_NORMS, all_specs
    all_specs()
    with pytest.raises(ConfigError) as refused:
        NormHook(weight="nonsense")
    listed = str(refused.value).split("valid options are: ", 1)[1].split(", ")
    assert set(listed) == set(WEIGHT_NORMS) and {"none", "sn", "bsn", "msn", "osn"} <= set(listed)
    with pytest.raises(ConfigError, match="batch"):
        NormHook(feature="nonsense")


def test_hook_passes_only_accepted_options():
    # null is "not given"; a value equal to another method's default is given, and refused
    hook = NormHook(weight="sn", n_power_iterations=3, eps=1e-8, scale=None, gate=None,
                    threshold=None)
    assert hook.options == {"n_power_iterations": 3, "eps": 1e-8}
    with pytest.raises(ConfigError, match="norm.weight=sn does not take option 'scale'"):
        NormHook(weight="sn", scale=1.0)
    layer = hook.wrap(nn.Linear(4, 4), "fc")
    assert layer.parametrizations.weight[0].n_power_iterations == 3
    assert list(hook.wrapped) == ["fc"]


def test_hook_refuses_an_option_the_method_does_not_take():
    with pytest.raises(ConfigError, match=r"norm.weight=sn does not take option 'scale'; "
                                          r"its options are: n_power_iterations, eps"):
        NormHook(weight="sn", scale=2.0)
    with pytest.raises(ConfigError, match=r"options 'unrelated', 'gate_on'; its options are: "
                                          r"scale, n_power_iterations, eps"):
        NormHook(weight="bsn", unrelated=1, gate_on=5.0)
    with pytest.raises(ConfigError, match=r"norm.weight=none .*its options are: \(none\)"):
        NormHook(weight="none", n_power_iterations=3)


def test_hook_routes_options_to_the_method_that_declares_them():
    assert NormHook(weight="bsn", scale=2.0).options["scale"] == 2.0
    assert NormHook(weight="osn", gate="logit_gap", momentum=None).options == {"gate": "logit_gap"}
    with pytest.raises(ConfigError, match="norm.weight=none does not take option 'n_power_iterations'"):
        NormHook(weight="none", feature="batch", n_power_iterations=1)


OLD_SHARED_NORM = {  # configs/norm/none.yaml before the options became null: every method's default
    "_target_": "spectral_gan.norms.NormHook", "module": None, "weight": "sn", "feature": "none",
    "penalty": "none", "penalty_weight": None, "apply_to": "all", "n_power_iterations": 1,
    "eps": 1e-12, "scale": 1.0, "learnable_scale": "none", "learn_scale": False, "momentum": 0.1,
    "center": "auto", "mode": "clip", "threshold": 1.0, "gate": "none", "gate_on": 2.0,
    "gate_off": 1.0, "layers": "all"}


def test_a_checkpoint_of_the_old_shared_options_resumes_under_todays_null_options(cfg_factory):
    from spectral_gan.norms.options import effective
    from spectral_gan.checkpoints.resume import differences
    from spectral_gan.config.run_config import run_config

    today = run_config(cfg_factory("data=ring", "generator=mlp", "discriminator=mlp", "norm=sn"))
    assert today["norm"]["scale"] is None and today["norm"]["n_power_iterations"] is None
    saved = {**today, "norm": OLD_SHARED_NORM}
    assert effective(OLD_SHARED_NORM) == effective(today["norm"])
    assert not [d for d in differences(saved, today, {}) if d.startswith("norm")]
    changed = {**today, "norm": {**OLD_SHARED_NORM, "n_power_iterations": 2}}
    assert any(d.startswith("norm.n_power_iterations=2") for d in differences(changed, today, {}))
