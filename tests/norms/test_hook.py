"""spectral_gan/norms/hook.py: NormHook, the one object a config builds: which method, which options, which layers."""
from __future__ import annotations

import pytest
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.errors import ConfigError
from spectral_gan.models import DCGANDiscriminator
from spectral_gan.norms import NormHook


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


@pytest.mark.parametrize("feature,weight", [("batch", "none"), ("mean", "sn"), ("none", "msn")])
def test_batch_mixing_with_penalty_is_refused_with_a_reason(feature, weight):
    with pytest.raises(ConfigError, match="per-sample"):
        NormHook(weight=weight, feature=feature, penalty="wgan_gp")


def test_apply_to_selects_layers_by_name():
    d = DCGANDiscriminator((1, 32, 32), ch=4, norm=NormHook("sn", apply_to=["conv0", "dense"]))
    normalized = {m.norm_name for m in d.modules()
                  if hasattr(m, "norm_name") and parametrize.is_parametrized(m, "weight")}
    assert normalized == {"conv0", "dense"}
