"""spectral_gan/norms/options.py: each method's options, the refusals of others', and checkpoints of the older shared options."""
from __future__ import annotations


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


def test_cli_refuses_an_option_the_method_does_not_take(tmp_path):
    from tests.conftest import run_cli
    proc = run_cli("data=ring", "generator=mlp", "discriminator=mlp", "norm=sn", "norm.scale=2",
                   "trainer=cpu", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert ("norm.weight=sn does not take option 'scale'; its options are: n_power_iterations, eps"
            in proc.stderr) and "Traceback" not in proc.stderr


def test_cli_refuses_another_methods_option_in_one_sentence_not_hydras_struct_error(tmp_path):
    from tests.conftest import run_cli
    proc = run_cli("data=ring", "generator=mlp", "discriminator=mlp", "norm=sn", "norm.target=2",
                   "norm.scale=1.0", "trainer=cpu", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert ("norm.weight=sn does not take options 'scale', 'target'" in proc.stderr
            or "norm.weight=sn does not take options 'target', 'scale'" in proc.stderr), proc.stderr
    assert "not in struct" not in proc.stderr and "Traceback" not in proc.stderr
