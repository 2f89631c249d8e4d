"""The captured training step (speed.capture_step, training/captured_step.py): for every norm
preset, dynamo traces the whole D update and G update (backward, penalties' double backward,
power iteration, Adam, EMA) as one graph each, and that graph computes what the eager step does.

``torch._dynamo.explain`` runs the function through the graphs it captured, so one call both
counts the breaks and takes the step whose weights are compared with the eager step's.

Wired into training (``speed.capture_step=true``, training/gan_captured.py), with a backend that
compiles in seconds (aot_eager): a few steps train to the eager run's weights, losses and
statistics; checkpoints resume either way; a refused combination is one sentence."""
from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import torch
from torch.nn.utils import parametrize

from spectral_gan.errors import ConfigError
from spectral_gan.losses import get_loss
from spectral_gan.models import DCGANDiscriminator, MLPGenerator
from spectral_gan.models.pack import penalty_inputs
from spectral_gan.norms import NormHook, power_iteration_paused
from spectral_gan.penalties import get_penalty
from spectral_gan.training import captured_step as cs
from spectral_gan.training import ema as ema_lib
from spectral_gan.training.ema import EMASettings

# The presets of configs/norm/ (gp_weak is gp at another weight), as NormHook arguments.
PRESETS = {
    "none": {}, "sn": {"weight": "sn"}, "sn_conv": {"weight": "sn_conv"}, "bsn": {"weight": "bsn"},
    "msn": {"weight": "msn"}, "osn": {"weight": "osn", "mode": "clip", "threshold": 1.0},
    "gp": {"penalty": "wgan_gp", "penalty_weight": 10.0}, "bn": {"feature": "batch"},
}
DECAY = 0.9
# eps 1e-4, not 1e-8: a bias before a BatchNorm (the generator's) has a gradient of pure rounding
# (BN cancels it), which Adam's normalization turns into an lr-sized step of arbitrary sign; eps
# keeps those at rounding size, so both steps can be compared tightly everywhere.
ADAM = partial(torch.optim.Adam, lr=2e-4, betas=(0.0, 0.9), eps=1e-4, fused=True)


def build(preset: str, loss: str = "hinge") -> dict:
    torch.manual_seed(0)
    hook = NormHook(**PRESETS[preset])
    # The smallest generator (a BatchNorm included: running statistics in the graph); the
    # discriminator the presets are for (convolutions: sn_conv's operator, BSN's two views,
    # MSN's folded centering).
    G = MLPGenerator((1, 32, 32), z_dim=8, hidden=8, depth=1, batch_norm=True)
    D = DCGANDiscriminator((1, 32, 32), ch=2, norm=hook)
    real, z = torch.rand(8, 1, 32, 32) * 2 - 1, torch.randn(8, 8)
    D(real)  # sn_conv fixes its operator's input size at the first forward
    ema = ema_lib.averaged_copy(G, EMASettings(DECAY, 0))
    ema_lib.update(ema, G, DECAY, first=True)
    pen = get_penalty(hook.penalty)
    return {"G": G, "D": D, "ema": ema, "real": real, "z": z, "loss": get_loss(loss),
            "penalty": None if pen is None else pen.fn, "weight": hook.penalty_weight or 10.0,
            "d_opt": ADAM(D.parameters()), "g_opt": ADAM(G.parameters())}


def penalty_fn(s: dict):
    if s["penalty"] is None:
        return None

    def fn(real, fake, y_real):
        return s["penalty"](*penalty_inputs(s["D"], real, fake), weight=s["weight"])
    return fn


def eager_step(s: dict) -> None:
    """One D and one G update the way training/gan.py takes them (backward, Adam's step)."""
    G, D, loss = s["G"], s["D"], s["loss"]
    torch.manual_seed(1)
    with torch.no_grad(), power_iteration_paused(G):
        fake = G(s["z"])
    with parametrize.cached():
        d_loss = loss.d(D(s["real"]), D(fake))
        if s["penalty"] is not None:
            d_loss = d_loss + penalty_fn(s)(s["real"], fake, None)
        s["d_opt"].zero_grad(set_to_none=True)
        d_loss.backward()
    s["d_opt"].step()
    torch.manual_seed(2)
    with cs.frozen(D), power_iteration_paused(D), parametrize.cached():
        g_loss = loss.g(D(G(s["z"])))
        s["g_opt"].zero_grad(set_to_none=True)
        g_loss.backward()
    s["g_opt"].step()
    ema_lib.update(s["ema"], G, DECAY, first=False)


def captured_step(s: dict) -> list:
    """The same step through the captured functions, each traced by ``explain``."""
    cs.prepare_adam(s["d_opt"]), cs.prepare_adam(s["g_opt"])
    pen = penalty_fn(s)

    def d_step(real, z):
        return cs.d_update(s["G"], s["D"], s["loss"], s["d_opt"], real, z, penalty=pen)

    def g_step(z):
        return cs.g_update(s["G"], s["D"], s["loss"], s["g_opt"], z, ema=s["ema"], ema_decay=DECAY)

    with cs.tracing_autograd():
        torch.manual_seed(1)
        d = torch._dynamo.explain(d_step)(s["real"], s["z"])
        torch.manual_seed(2)
        with cs.frozen(s["D"]):
            g = torch._dynamo.explain(g_step)(s["z"])
    return [d, g]


def state(s: dict) -> dict:
    out = {f"{k}.{n}": t for k in ("G", "D", "ema") for n, t in s[k].state_dict().items()}
    for k in ("d_opt", "g_opt"):
        for i, st in s[k].state_dict()["state"].items():
            out.update({f"{k}.{i}.{n}": t for n, t in st.items()})
    return out


@pytest.mark.parametrize("preset", list(PRESETS))
def test_each_update_is_one_graph_and_computes_the_eager_step(preset):
    eager, captured = build(preset), build(preset)
    eager_step(eager)
    explained = captured_step(captured)
    for what, e in zip(("D update", "G update"), explained):
        reasons = [b.reason.splitlines()[0] for b in e.break_reasons]
        assert (e.graph_count, e.graph_break_count) == (1, 0), f"{preset} {what}: {reasons}"
    want, got = state(eager), state(captured)
    for key in got.keys() - want.keys():  # Adam state made up front for a parameter without
        assert not got[key].any(), key  # gradient (MSN's folded bias): zero, never stepped
    for key in want:
        torch.testing.assert_close(got[key].float(), want[key].float(), rtol=1e-5, atol=1e-6,
                                   msg=lambda m, key=key: f"{preset} {key}: {m}")
    # the step moved something (not a vacuous equality)
    start = state(build(preset))
    for net in ("D.", "G.", "ema."):
        assert any(not torch.equal(start[k], got[k]) for k in got if k.startswith(net)), net


def test_a_non_finite_loss_skips_the_update_on_the_device():
    s = build("sn")
    cs.prepare_adam(s["d_opt"])
    before = copy.deepcopy(s["D"].state_dict())
    real = s["real"].clone()
    real[0, 0, 0, 0] = float("nan")
    out = cs.d_update(s["G"], s["D"], s["loss"], s["d_opt"], real, s["z"])
    assert out["bad"].item() == 1.0
    after = s["D"].state_dict()
    for key, value in before.items():
        if not key.endswith((".u", ".v")):  # the power iteration ran in the forward, as eagerly
            assert torch.equal(after[key], value), key
    assert all(float(st["step"]) == 0 for st in s["d_opt"].state.values())


def test_relativistic_loss_and_lr_changes_need_no_new_graph():
    # lr lives in a device tensor (lr_decay moves it without a recompile)
    s = build("sn")
    cs.prepare_adam(s["g_opt"])
    for group in s["g_opt"].param_groups:
        group["lr"] = 1e-3
    cs.sync_lr(s["g_opt"])
    assert float(s["g_opt"].captured_lr[0]) == pytest.approx(1e-3)


@pytest.mark.parametrize("kwargs,match", [
    ({"precision": "16-mixed"}, "GradScaler reads found_inf on the host"),
    ({"world_size": 2}, "one device only"),
    ({"gradient_clip": 1.0}, "does not clip gradients"),
    ({"pack_per_slot": True}, "pack_generator=joint"),
    ({"lecam": True}, "LeCam"),
    ({"fault": True}, "does not inject faults"),
    ({"discriminator": build("sn")["D"]}, "cannot compile a weight-normalized D yet"),
    ({"optimizers": [torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)]},
     "Adam only, not SGD"),
    ({"optimizers": [torch.optim.Adam([torch.zeros(1, requires_grad=True)])]},
     "optimizer.d.fused=true"),
])
def test_refused_combinations_say_why(kwargs, match):
    reason = cs.refusal(**kwargs)
    with pytest.raises(ConfigError, match=match):
        cs.capture_step_on(True, "cuda", reason)
    assert not cs.capture_step_on("auto", "cuda", reason)  # auto falls back to the eager step


def test_auto_is_on_for_cuda_only_and_values_are_checked():
    assert cs.refusal(precision="bf16-mixed", discriminator=build("gp")["D"]) is None
    assert cs.capture_step_on("auto", "cuda", None) and not cs.capture_step_on("auto", "cpu", None)
    assert cs.capture_step_on(True, "cpu", None) and not cs.capture_step_on(False, "cuda", None)
    assert cs.refusal(discriminator=build("sn")["D"], backend="eager") is None  # no AOT autograd
    with pytest.raises(ConfigError, match="speed.capture_step must be auto, true or false"):
        cs.capture_step_on("on", "cuda", None)
    with pytest.raises(ConfigError, match="Adam only"):
        cs.prepare_adam(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))


# Inductor compiles the captured updates of an unparametrized D (none, gp) but not yet of a
# parametrized one (sn and the rest): AOT autograd traces a joint graph, whose backward finds
# the raw weight that the parametrization's division saved modified by the in-place Adam update
# ("modified by an inplace operation ... output 0 of torch::autograd::Error").
@pytest.mark.slow
@pytest.mark.parametrize("preset", [
    "gp", pytest.param("sn", marks=pytest.mark.xfail(raises=torch._dynamo.exc.BackendCompilerFailed,
                                                    strict=True))])
def test_inductor_compiled_step_computes_the_eager_step(preset):
    eager, compiled = build(preset), build(preset)
    eager_step(eager)
    cs.prepare_adam(compiled["d_opt"]), cs.prepare_adam(compiled["g_opt"])
    d = cs.compile_update(partial(cs.d_update, compiled["G"], compiled["D"], compiled["loss"],
                                  compiled["d_opt"], penalty=penalty_fn(compiled)))
    g = cs.compile_update(partial(cs.g_update, compiled["G"], compiled["D"], compiled["loss"],
                                  compiled["g_opt"], ema=compiled["ema"], ema_decay=DECAY))
    torch._inductor.config.fallback_random = True  # the penalty's torch.rand as eagerly
    try:
        torch.manual_seed(1)
        d(compiled["real"], compiled["z"])
        torch.manual_seed(2)
        with cs.frozen(compiled["D"]):
            g(compiled["z"])
    finally:
        torch._inductor.config.fallback_random = False
    want, got = state(eager), state(compiled)
    for key in want:
        torch.testing.assert_close(got[key].float(), want[key].float(), rtol=1e-4, atol=1e-5,
                                   msg=lambda m, key=key: f"{key}: {m}")


# -- wired into training (speed.capture_step, training/gan_captured.py) -----------------------
# aot_eager: AOT autograd's graphs as inductor gets them, run eagerly (seconds to compile, where
# inductor takes minutes on this CPU); n_dis 2: two D updates a step.
RING = ["data=ring", "generator=mlp", "discriminator=mlp", "batch_size=32", "n_dis=2",
        "eval=null", "ema.decay=0.5", "ema.start=0", "speed.compile_backend=aot_eager"]
STAT_KEYS = {"real", "fake", "y_real", "y_fake", "d_real", "d_fake", "penalty", "loss_adv",
             "loss_d", "lecam", "loss_g"}


def _train(cfg_factory, tmp_path, name, *overrides):
    from spectral_gan.training.run import train

    result = train(cfg_factory(*RING, *overrides, run_dir=tmp_path / name))
    module = result["module"]
    return result, module


@pytest.mark.parametrize("preset", ["none", "gp"])
def test_captured_training_step_trains_as_the_eager_one(cfg_factory, tmp_path, preset,
                                                        monkeypatch):
    from spectral_gan.training.callbacks.diagnostics import LayerDiagnostics
    from tests.test_train import scalars

    keys = []  # of each step's statistics, as the callbacks get them
    diagnose = LayerDiagnostics.on_train_batch_end
    monkeypatch.setattr(LayerDiagnostics, "on_train_batch_end",
                        lambda self, t, m, outputs, *a: keys.append(set(outputs))
                        or diagnose(self, t, m, outputs, *a))
    runs = {}
    for capture in ("true", "auto"):  # auto: off on the CPU
        result, module = _train(cfg_factory, tmp_path, capture, f"norm={preset}", "steps=2",
                                f"speed.capture_step={capture}")
        assert (module._captured is not None) == (capture == "true")
        assert result["gen_step"] == 2 and module.trainer.global_step == 2
        assert module.G_ema.n_averaged.item() == 2  # step 1 copies, step 2 averages (in the graph)
        runs[capture] = (module, scalars(str(tmp_path / capture)))
    (captured, logged), (eager, eager_logged) = runs["true"], runs["auto"]
    assert keys == [STAT_KEYS] * 4
    for tag in ("loss/d", "loss/g", "grad_norm/d", "lipschitz/grad_max", "grad_norm/g/net.0"):
        assert logged[tag][-1][0] == 2, tag  # diagnostics: the callbacks got the step's stats
        assert all(math.isfinite(v) for _, v in logged[tag]), tag
        assert [v for _, v in logged[tag]] == pytest.approx(
            [v for _, v in eager_logged[tag]], rel=1e-4, abs=1e-6), tag
    if preset == "gp":
        assert "loss/penalty_wgan_gp" in logged
    want = {f"{k}.{n}": t for k in ("G", "D", "G_ema") for n, t in getattr(eager, k).state_dict().items()}
    got = {f"{k}.{n}": t for k in ("G", "D", "G_ema") for n, t in getattr(captured, k).state_dict().items()}
    assert want.keys() == got.keys()
    for key in want:
        torch.testing.assert_close(got[key].float(), want[key].float(), rtol=1e-5, atol=1e-6,
                                   msg=lambda m, key=key: f"{preset} {key}: {m}")
    ema = dict(captured.G_ema.module.named_parameters())
    assert any(not torch.equal(p, ema[n]) for n, p in captured.G.named_parameters())


def test_checkpoints_of_the_captured_step_resume_either_way(cfg_factory, tmp_path):
    from tests.test_train import scalars

    first, _ = _train(cfg_factory, tmp_path, "run", "norm=gp", "steps=2", "checkpoint_every=2",
                      "speed.capture_step=true")
    state = torch.load(first["checkpoint"], weights_only=False)
    assert state["global_step"] == 2
    adam = state["optimizer_states"][0]["state"][0]  # Adam's own format, as the eager step's
    assert set(adam) == {"step", "exp_avg", "exp_avg_sq"} and float(adam["step"]) == 4  # 2 x n_dis
    eager, module = _train(cfg_factory, tmp_path, "run", "norm=gp", "steps=3",
                           "speed.capture_step=false",
                           f"ckpt_path={first['checkpoint']}")
    assert eager["gen_step"] == 3 and module._captured is None
    again, module = _train(cfg_factory, tmp_path, "run", "norm=gp", "steps=4",
                           "speed.capture_step=true",
                           f"ckpt_path={eager['checkpoint']}")
    assert again["gen_step"] == 4 and module._captured is not None
    assert module.G_ema.n_averaged.item() == 4
    adam = module.optimizers(use_pl_optimizer=False)[0].state
    assert all(float(s["step"]) == 8 for s in adam.values())
    logged = scalars(str(tmp_path / "run"))["loss/d"]
    assert [s for s, _ in logged] == [1, 2, 3, 4] and all(math.isfinite(v) for _, v in logged)


def test_a_refused_combination_is_one_sentence_before_training(cfg_factory, tmp_path):
    with pytest.raises(ConfigError, match=r"^speed.capture_step=true cannot compile a "
                                          r"weight-normalized D yet: [^\n]*$"):
        _train(cfg_factory, tmp_path, "sn", "norm=sn", "steps=1", "speed.capture_step=true",
               "speed.compile_backend=inductor")
    with pytest.raises(ConfigError, match="speed.capture_step must be auto, true or false"):
        _train(cfg_factory, tmp_path, "bad", "norm=none", "steps=1", "speed.capture_step=sometimes")
