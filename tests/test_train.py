"""Training through the real path: compose -> train() -> Lightning, and the CLI."""
from __future__ import annotations

import glob
import math
import os

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.nn.utils import parametrize

from spectral_gan.training import health
from spectral_gan.norms import PowerIteration
from devtools import digit_quality
from spectral_gan.cli.train import compose_train_config
from spectral_gan.training.run import train
from tests.conftest import REPO, run_cli

RING = ["data=ring", "generator=mlp", "discriminator=mlp", "batch_size=32"]
TINY_IMAGES = ["data=digits", "batch_size=8", "generator.ch=8", "discriminator.ch=8"]


def scalars(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the run's event files in step order (the last written value of a step
    wins): a resumed run's event file can sort before the first one (same second, writer counter
    10 < 9 as text), and is then read first."""
    acc = EventAccumulator(os.path.join(run_dir, "tb"), size_guidance={"scalars": 0, "images": 0},
                           purge_orphaned_data=False)
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        by_step = {e.step: e.value for e in sorted(acc.Scalars(tag), key=lambda e: e.wall_time)}
        out[tag] = sorted(by_step.items())
    return out


@pytest.mark.parametrize("loss", ["hinge", "ns", "wgan", "lsgan"])
def test_each_loss_trains_on_ring(cfg_factory, tmp_path, loss):
    result = train(cfg_factory(*RING, f"loss={loss}", "norm=sn", "steps=6"))
    assert result["gen_step"] == 6
    logged = scalars(str(tmp_path))
    for tag in ("loss/d", "loss/g", "d/real", "d/fake", "lr/d", "lr/g"):
        steps = [s for s, _ in logged[tag]]
        assert steps == [1, 2, 3, 4, 5, 6], tag  # x-axis is the generator step
        assert all(math.isfinite(v) for _, v in logged[tag])
    assert logged["lr/g"][0][1] == pytest.approx(2e-4)
    assert os.path.exists(tmp_path / "checkpoints" / "last.ckpt")
    assert os.path.exists(tmp_path / "samples" / "step_000006.png")


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
@pytest.mark.parametrize("norm", ["sn", "bn", "none"])
def test_image_architectures_train(cfg_factory, tmp_path, arch, norm):
    cfg = cfg_factory(*TINY_IMAGES, f"generator={arch}", f"discriminator={arch}", f"norm={norm}",
                      "steps=2", "n_dis=2")
    result = train(cfg)
    assert result["gen_step"] == 2
    assert result["trainer"].global_step == 2  # Lightning counts generator steps, not D's
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    assert "samples" in acc.Tags()["images"]


def test_one_power_iteration_per_discriminator_update(cfg_factory, monkeypatch):
    cfg = cfg_factory(*TINY_IMAGES, "norm=sn", "steps=3", "n_dis=2")
    counts: dict[int, int] = {}
    original = PowerIteration.step

    def counting(self, matrix, n):
        counts[id(self)] = counts.get(id(self), 0) + n
        return original(self, matrix, n)

    result = None
    # Count only during training: construction runs warm-up iterations.
    monkeypatch.setattr("spectral_gan.training.gan.GAN.on_train_start",
                        lambda self: (counts.clear(), monkeypatch.setattr(PowerIteration, "step", counting)))
    result = train(cfg)
    module = result["module"]
    layers = [m for m in module.D.modules() if isinstance(m, PowerIteration)]
    assert len(layers) == 8  # 7 convs + dense
    # 3 generator steps x n_dis=2 discriminator updates, each with 2 D forwards (real, fake):
    # exactly one iteration per update, none in the generator update.
    assert [counts.get(id(p), 0) for p in layers] == [6] * 8


def test_generator_step_leaves_power_iteration_alone(cfg_factory):
    cfg = cfg_factory(*TINY_IMAGES, "norm=sn", "steps=1")
    from hydra.utils import instantiate
    from torch.nn.utils import parametrize

    from spectral_gan.norms import power_iteration_paused

    d = instantiate(cfg.discriminator, shape=(1, 32, 32), norm=instantiate(cfg.norm))
    before = [p.u.clone() for p in d.modules() if isinstance(p, PowerIteration)]
    with power_iteration_paused(d), parametrize.cached():
        d(torch.randn(2, 1, 32, 32)).sum().backward()
    after = [p.u for p in d.modules() if isinstance(p, PowerIteration)]
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_resume_continues_step_count_and_logging(cfg_factory, tmp_path):
    first = train(cfg_factory(*RING, "steps=4", "checkpoint_every=2"))
    ckpt = first["checkpoint"]
    assert first["gen_step"] == 4 and os.path.exists(ckpt)
    state = torch.load(ckpt, weights_only=False)
    assert state["global_step"] == 4 and state["step_unit"] == "generator"
    resumed = train(cfg_factory(*RING, "steps=7", f"ckpt_path={ckpt}"))
    assert resumed["gen_step"] == 7
    steps = [s for s, _ in scalars(str(tmp_path))["loss/d"]]
    assert steps[-3:] == [5, 6, 7]  # same TensorBoard run, continued at the right step
    names = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "checkpoints" / "*.ckpt")))
    assert {"gen_step_000002.ckpt", "gen_step_000004.ckpt", "gen_step_000006.ckpt"} <= set(names)


def test_ema_generator_used_for_samples(cfg_factory):
    result = train(cfg_factory(*RING, "steps=4", "ema.decay=0.5", "ema.start=1"))
    module = result["module"]
    assert module.G_ema.n_averaged.item() == 3
    assert module.sampler is module.G_ema.module
    ema_w = next(module.G_ema.module.parameters())
    assert not torch.equal(ema_w, next(module.G.parameters()))


def test_ema_disabled(cfg_factory):
    module = train(cfg_factory(*RING, "steps=2", "ema.decay=0"))["module"]
    assert module.G_ema is None and module.sampler is module.G


def test_hparams_and_csv_logger(cfg_factory, tmp_path):
    train(cfg_factory(*RING, "steps=2", "logger=csv"))
    metrics = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "loss/d" in metrics.splitlines()[0]
    hparams = (tmp_path / "csv" / "hparams.yaml").read_text()
    assert "n_dis: 1" in hparams and "weight: sn" in hparams


@pytest.mark.parametrize("loss", ["hinge", "ns", "wgan", "lsgan"])
def test_cli_ring_each_loss(tmp_path, loss):
    proc = run_cli("data=ring", "generator=mlp", "discriminator=mlp", "norm=sn", f"loss={loss}",
                   "steps=20", "callbacks.progress_bar.refresh_rate=0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Trained 20 generator steps" in proc.stdout
    assert "tensorboard --logdir" in proc.stdout
    assert glob.glob(str(tmp_path / "outputs" / "train" / "runs" / "*" / "checkpoints" / "last.ckpt"))


@pytest.mark.parametrize("args,expected", [
    (["norm=nonsense"], ["norm=nonsense does not exist; valid options are:", "sn", "bn", "none"]),
    (["loss=nonsense"], ["loss=nonsense does not exist; valid options are:", "hinge"]),
    (["data.image_size=40"], ["32, 48, 64 px", "data.image_size"]),
    (["data=cifar10", "data.root=nowhere"], ["cifar-10-batches-py", "data_batch_1"]),
    (["steps=0"], ["steps must be a positive integer"]),
    (["n_dis=-1"], ["n_dis must be a positive integer"]),
])
def test_bad_input_is_one_clear_sentence(tmp_path, args, expected):
    proc = run_cli(*args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    for text in expected:
        assert text in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_ddp_two_cpu_processes_keep_identical_vectors_and_metrics(tmp_path, monkeypatch):
    from tests.conftest import REPO
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = run_cli("experiment=ring_sn", "trainer=ddp", "trainer.accelerator=cpu", "steps=4",
                   "eval.every=2", "eval.num_samples=300", "callbacks.progress_bar.refresh_rate=0",
                   "+callbacks.probe._target_=tests.ddp_probe.RankProbe",
                   f"+callbacks.probe.out={tmp_path / 'probe'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Trained 4 generator steps" in proc.stdout
    r0 = torch.load(tmp_path / "probe" / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "probe" / "rank1.pt", weights_only=True)
    assert len(r0["vectors"]) == 4  # 3 hidden layers + output of the MLP discriminator
    assert all(torch.equal(a, b) for a, b in zip(r0["vectors"], r1["vectors"]))
    assert all(torch.equal(a, b) for a, b in zip(r0["weights"], r1["weights"]))
    assert r0["metrics"] and r0["metrics"] == r1["metrics"]


@pytest.mark.parametrize("check", ["deferred", "every_update"])
def test_ddp_a_nan_on_one_rank_is_skipped_on_every_rank(tmp_path, monkeypatch, check):
    from tests.conftest import REPO
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = run_cli("experiment=ring_sn", "trainer=ddp", "trainer.accelerator=cpu", "steps=3",
                   "eval.every=0", "eval.num_samples=300", "callbacks.progress_bar.refresh_rate=0",
                   "fault.nan_at_step=2", "fault.nan_rank=1", "divergence.action=skip",
                   f"divergence.check={check}", "log_every=1",
                   "+callbacks.probe._target_=tests.ddp_probe.RankProbe",
                   f"+callbacks.probe.out={tmp_path / 'probe'}", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]  # no hang: both ranks skip together
    r0 = torch.load(tmp_path / "probe" / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "probe" / "rank1.pt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in r0["weights"])
    assert all(torch.equal(a, b) for a, b in zip(r0["weights"], r1["weights"]))


def longest_stall(logged: dict[str, list[tuple[int, float]]]) -> int:
    """Most consecutive log steps on which D's gradient norm vanished (health.STALL_GRAD_NORM)."""
    longest = streak = 0
    for _, value in logged["grad_norm/d"]:
        streak = streak + 1 if value < health.STALL_GRAD_NORM else 0
        longest = max(longest, streak)
    return longest


def test_default_experiment_canary_discriminator_keeps_learning(tmp_path):
    """The first 150 steps of what `make run` trains (issue #12). The old default's failure began
    here: D's hinge loss at 0, its gradients vanished and d/fake constant while the generator sat
    on a black image. With the old Adam betas (0.5, 0.999) seed 0 had loss/d 0.000 by step 20 on
    this machine kind (1 and 2 threads alike), and seeds 1 and 2 later; with (0.0, 0.9) its lowest
    loss/d in these steps was 0.075 (2 threads) and 0.019 (1 thread), 20-75x above the bound."""
    overrides = ["experiment=mnist5k_sn", "seed=0", "steps=150", "log_every=10", "debug=quiet",
                 "eval.classifier=false"]
    result = train(compose_train_config(overrides, str(tmp_path)))
    logged = scalars(str(tmp_path))
    assert longest_stall(logged) < health.STALL_LOGS, logged["grad_norm/d"]
    assert min(v for _, v in logged["loss/d"]) > 1e-3, logged["loss/d"]
    fake = [v for _, v in logged["d/fake"][-5:]]
    assert max(fake) - min(fake) > 1e-3, "d/fake constant: the generator no longer moves"
    assert not any("gradient norm" in r for r in result["health"])


@pytest.fixture(scope="module")
def default_runs(tmp_path_factory):
    """What `make run` trains, in full, on seeds 0-2 (trained once for the tests below), each
    scored by devtools/digit_quality.py."""
    root = tmp_path_factory.mktemp("default")
    results = []
    for seed in (0, 1, 2):
        run = root / f"seed{seed}"
        proc = run_cli("experiment=mnist5k_sn", f"seed={seed}", "callbacks.progress_bar.refresh_rate=0",
                       f"hydra.run.dir={run}", cwd=root, timeout=1800)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append((str(run), proc, digit_quality.evaluate_digits(str(run / "checkpoints" / "last.ckpt"))))
    return results


@pytest.mark.slow
def test_default_experiment_gives_digits_on_three_seeds(default_runs):
    """Finishes, writes samples and a loadable checkpoint; no collapse (issue #12), classifier
    FID at most 3x the median of the three, classifier IS at least 0.7x real held-out digits'."""
    median = digit_quality.median_fid([q for _, _, q in default_runs])
    real_is = digit_quality.real_heldout_is()
    for run, proc, q in default_runs:
        assert os.path.exists(os.path.join(run, "samples", "step_001600.png"))
        state = torch.load(os.path.join(run, "checkpoints", "last.ckpt"), weights_only=True)
        assert state["global_step"] == 1600
        logged = scalars(run)
        assert all(math.isfinite(v) for _, v in logged["loss/d"])
        assert logged["health/collapsed"][-1] == (1600, 0.0)
        assert "collapsed" not in proc.stdout
        v = digit_quality.verdict(q, median, real_is)
        assert not q.collapse_reasons(), f"{run}: {q.collapse_reasons()}"
        assert v["fid_ok"], f"{run}: FID {q.fid_classifier:.0f} > 3 x median {median:.0f}"
        assert v["is_target"], f"{run}: classifier IS {q.is_classifier:.2f} < 0.7 x {real_is:.2f}"


@pytest.mark.slow
def test_default_experiment_makes_every_digit_4_to_16_percent(default_runs):
    for run, _, q in default_runs:
        fractions = q.class_fractions
        assert all(digit_quality.CLASS_MIN <= f <= digit_quality.CLASS_MAX for f in fractions), \
            f"{run}: class fractions {fractions}"


# -- the normalization family through the real training path (issue: normalization family) --

# Every preset of configs/norm/, read from the config tree: a new preset is tested without a list to keep.
PRESETS = sorted(p.stem for p in (REPO / "configs" / "norm").glob("*.yaml"))


@pytest.mark.parametrize("norm", PRESETS)
def test_every_preset_trains_on_ring(cfg_factory, tmp_path, norm):
    result = train(cfg_factory(*RING, f"norm={norm}", "steps=3"))
    assert result["gen_step"] == 3
    logged = scalars(str(tmp_path))
    assert "sigma/fc0" in logged and "grad_norm/d" in logged
    assert all(math.isfinite(v) for _, v in logged["loss/d"])
    # diagnostics on by default, at the last step: an upper bound above the gradient lower bound
    for tag in ("condition/fc0", "sigma_eff/fc0", "grad_norm/d/fc0", "grad_norm/g/net.0",
                "drift/fc0", "lipschitz/grad_max", "lipschitz/bound_layerwise"):
        assert tag in logged, tag
    assert "lipschitz/upper_bound" not in logged
    assert logged["lipschitz/bound_layerwise"][-1][1] >= logged["lipschitz/grad_max"][-1][1]
    if norm in ("sn", "bsn", "msn"):
        assert logged["sigma_eff/fc0"][-1][1] == pytest.approx(1.0, rel=0.05)
    if norm == "gp":
        assert "loss/penalty_wgan_gp" in logged and "loss/d_adversarial" in logged


@pytest.mark.parametrize("norm", PRESETS)
def test_every_preset_trains_on_mnist5k(cfg_factory, tmp_path, norm):
    cfg = cfg_factory("data=mnist5k", "batch_size=8", "generator.ch=4", "discriminator.ch=4",
                      f"norm={norm}", "steps=2")
    result = train(cfg)
    assert result["gen_step"] == 2
    logged = scalars(str(tmp_path))
    assert [s for s, _ in logged["loss/d"]] == [1, 2] and all(math.isfinite(v) for _, v in logged["loss/d"])
    weight = cfg.norm.weight  # the method the preset names is the one the discriminator holds
    normalized = [m for m in result["module"].D.modules() if parametrize.is_parametrized(m, "weight")]
    wrapped = [m for m in result["module"].D.modules() if hasattr(m, "wrapped")]
    assert bool(normalized or wrapped) == (weight != "none"), (norm, weight)
    if cfg.norm.penalty != "none":  # the penalty is applied, at the preset's weight
        assert f"loss/penalty_{cfg.norm.penalty}" in logged, sorted(logged)


def test_bsn_logs_both_directions_and_osn_gates(cfg_factory, tmp_path):
    train(cfg_factory(*TINY_IMAGES, "norm=bsn", "steps=2"))
    logged = scalars(str(tmp_path))
    assert "sigma/conv1/out" in logged and "sigma/conv1/in" in logged


def test_osn_adaptive_gate_trains_and_is_logged(cfg_factory, tmp_path):
    result = train(cfg_factory(*RING, "norm=osn", "norm.gate=logit_gap", "norm.gate_on=0.01",
                               "norm.gate_off=0.005", "norm.mode=full", "steps=4"))
    logged = scalars(str(tmp_path))
    assert {f"osn_gate/{n}" for n in ("fc0", "fc1", "fc2", "out")} <= set(logged)
    assert result["module"].gate_signals == {"logit_gap"}


def test_sn_with_r1_combines(cfg_factory, tmp_path):
    result = train(cfg_factory(*RING, "norm=sn", "norm.penalty=r1", "steps=2"))
    assert result["module"].penalty.name == "r1" and result["module"].penalty_weight == 10.0
    assert "loss/penalty_r1" in scalars(str(tmp_path))


def test_generator_norm_activation_init_and_svd_monitor(cfg_factory, tmp_path):
    result = train(cfg_factory(*RING, "g_norm=sn", "discriminator.activation=selu",
                               "discriminator.init=lecun", "monitor.svd_every=1", "steps=2",
                               "ema.start=0"))
    from torch.nn.utils import parametrize
    g = result["module"].G
    assert all(parametrize.is_parametrized(m, "weight") for m in g.modules()
               if isinstance(m, torch.nn.Linear))
    assert any(isinstance(m, torch.nn.SELU) for m in result["module"].D.modules())
    assert "condition/fc0" in scalars(str(tmp_path))
    from spectral_gan.norms import power_iterations
    ema_u = [p.u for p in power_iterations(result["module"].G_ema.module)]
    assert ema_u and all(torch.equal(a, p.u) for a, p in zip(ema_u, power_iterations(g)))


def test_cli_refuses_batch_norm_with_gradient_penalty(tmp_path):
    proc = run_cli("norm=bn", "norm.penalty=wgan_gp", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "per-sample" in proc.stderr and "norm.feature=batch" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- evaluation during training (issue: evaluation) ---------------------------------------------

def test_classifier_metrics_best_checkpoint_and_protocol(cfg_factory, tmp_path):
    result = train(cfg_factory(*TINY_IMAGES, "steps=4", "eval.every=2", "logger=[tensorboard,csv]",
                               "eval.cache_dir=" + str(tmp_path / "cache")))
    logged = scalars(str(tmp_path))
    assert [s for s, _ in logged["metrics/fid_classifier"]] == [2, 4]
    assert "metrics/is_classifier" in logged and "metrics/best_fid_classifier" in logged
    assert set(result["module"].evaluator.metric_names()) <= set(logged)  # HParams declares these
    best = min(v for _, v in logged["metrics/fid_classifier"])
    assert logged["metrics/best_fid_classifier"][-1][1] == pytest.approx(best)
    assert os.path.exists(tmp_path / "checkpoints" / "best.ckpt")
    protocol = result["module"].run_hparams["eval_protocol"]
    assert protocol["n_fake"] == 300 and protocol["classifier"]["n_real"] == 300
    assert protocol["reference_split"] == "train" and protocol["image_size"] == 32
    assert "digits_classifier.pt" in protocol["classifier"]["weights"]
    assert list((tmp_path / "cache" / "reference_stats").glob("digits-train-*-n300.pt"))
    assert "eval_protocol" in (tmp_path / "csv" / "hparams.yaml").read_text()


def test_mode_metrics_on_ring(cfg_factory, tmp_path):
    train(cfg_factory(*RING, "steps=2", "eval.every=1"))
    logged = scalars(str(tmp_path))
    for tag in ("metrics/modes", "metrics/high_quality", "metrics/reverse_kl", "metrics/best_reverse_kl"):
        assert [s for s, _ in logged[tag]] == [1, 2], tag
    assert 0 <= logged["metrics/modes"][-1][1] <= 8


def test_step_timer_writes_step_times(cfg_factory, tmp_path):
    out = tmp_path / "times.json"
    train(cfg_factory(*RING, "steps=6", "+callbacks.step_timer._target_=spectral_gan.training.callbacks.StepTimer",
                      f"+callbacks.step_timer.path={out}"))
    import json
    result = json.loads(out.read_text())
    assert len(result["all_step_times"]) == 6 and len(result["step_times"]) == 2  # 3 warm-up, last
    assert all(t > 0 for t in result["all_step_times"]) and result["peak_rss_mb"] > 0


# -- issue 14: per-layer OSN gates, learnable scales and DRAGAN through the real training path --

ISSUE14_RUNS = {
    "osn_sigma": ["norm=osn", "norm.gate=sigma", "norm.gate_on=1.5", "norm.gate_off=1.2"],
    "sn_per_layer": ["norm=sn", "norm.learnable_scale=per_layer"],
    "bsn_shared": ["norm=bsn", "norm.learnable_scale=shared", "norm.scale=1.5"],
    "sn_dragan": ["norm=sn", "norm.penalty=dragan"],
}


@pytest.mark.parametrize("run", list(ISSUE14_RUNS))
def test_per_layer_gates_learnable_scales_and_dragan_train_on_ring(cfg_factory, tmp_path, run):
    result = train(cfg_factory(*RING, *ISSUE14_RUNS[run], "steps=3", "eval=null"))
    assert result["gen_step"] == 3 and not result["module"].diverged
    logged = scalars(str(tmp_path))
    assert all(math.isfinite(v) for _, v in logged["loss/d"])
    if run == "osn_sigma":
        # the ring MLP's layers start with different sigmas (fc0 about 4.6, the rest about 1 or
        # below): its gate opens at the first update while the others stay closed
        assert [v for _, v in logged["osn_gate/fc0"]] == [1.0, 1.0, 1.0]
        assert [v for _, v in logged["osn_gate/out"]] == [0.0, 0.0, 0.0]
        assert result["module"].gate_signals == {"layer_sigma"}
    if run == "sn_per_layer":
        tags = {f"learnable_scale/{n}" for n in ("fc0", "fc1", "fc2", "out")}
        assert tags <= set(logged)
        assert any(v != 1.0 for t in tags for _, v in logged[t])  # gamma moved
    if run == "bsn_shared":
        values = [v for _, v in logged["learnable_scale/shared"]]
        assert len(values) == 3 and values[0] != 1.5  # started at c = 1.5, then learned
    if run == "sn_dragan":
        assert "loss/penalty_dragan" in logged


@pytest.mark.parametrize("run", ["osn_sigma", "sn_per_layer", "bsn_shared"])
def test_per_layer_gates_and_learnable_scales_train_on_mnist5k(cfg_factory, tmp_path, run):
    cfg = cfg_factory("data=mnist5k", "batch_size=8", "generator.ch=4", "discriminator.ch=4",
                      *ISSUE14_RUNS[run], "steps=2", "eval=null")
    assert train(cfg)["gen_step"] == 2
    logged = scalars(str(tmp_path))
    prefix = "osn_gate/" if run == "osn_sigma" else "learnable_scale/"
    assert any(tag.startswith(prefix) for tag in logged)


def test_penalty_scale_comes_from_lightnings_grad_scaler():
    from types import SimpleNamespace

    from spectral_gan.training.optimizers import amp_scale

    assert amp_scale(None) is None  # no trainer
    assert amp_scale(SimpleNamespace(precision_plugin=SimpleNamespace(scaler=None))) is None  # 32, bf16
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=scaler))
    assert amp_scale(trainer) == 1024.0  # before the scaler's first use
    scaler.scale(torch.ones(()))
    scale = amp_scale(trainer)
    assert torch.is_tensor(scale) and scale.item() == 1024.0


@pytest.mark.parametrize("norm", sorted(p.stem for p in (REPO / "configs" / "norm").glob("*.yaml")))
def test_bf16_mixed_on_the_cpu_trains_with_every_diagnostic(cfg_factory, tmp_path, norm):
    """The default experiment's precision on CPUs with native bf16 (issue 35, item 8): the
    per-layer diagnostics (a callback) see the step's bf16 fake batch under the same autocast."""
    train(cfg_factory(*TINY_IMAGES, f"norm={norm}", "steps=2", "trainer.precision=bf16-mixed",
                      "monitor.svd_every=1", "monitor.lipschitz_every=1", "monitor.layer_stats_every=1"))
    logged = scalars(str(tmp_path))
    assert [s for s, _ in logged["lipschitz/grad_max"]] == [1, 2]
    assert any(tag.startswith("drift/") for tag in logged)
    assert all(math.isfinite(v) for _, v in logged["loss/d"])
