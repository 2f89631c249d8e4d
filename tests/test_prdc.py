"""Precision, recall, density and coverage (spectral_gan/metrics/prdc.py): known answers on small
sets, chunking, one shared k-NN state per suite with its real side kept and cached, and the four
logged in training, by spectral-gan-eval and tabulated by spectral-gan-compare."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from spectral_gan.metrics import prdc as prdc_module
from spectral_gan.metrics import registry
from spectral_gan.metrics.prdc import NAMES, knn_radii, prdc
from spectral_gan.metrics.suite import MetricSuite


def column(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)[:, None]


def test_identical_sets_are_fully_precise_recalled_and_covered():
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    out = prdc(x, x.clone())
    assert (out["precision"], out["recall"], out["coverage"]) == (1.0, 1.0, 1.0)
    # each point lies in its own ball and in the balls of the k=5 points it is a neighbour of:
    # (N + 5N) / (5N) = 1 + 1/k
    assert out["density"] == pytest.approx(1.2)


def test_far_apart_sets_score_zero():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    assert prdc(x, x + 1000.0) == dict.fromkeys(NAMES, 0.0)


def test_a_hand_computed_1d_example():
    # Reals: two clusters of six, 0..5 and 20..25. k=3 radii (3rd nearest other real):
    # 3,2,2,2,2,3 per cluster; k=5 radii: 5,4,3,3,4,5 per cluster.
    real = column(0, 1, 2, 3, 4, 5, 20, 21, 22, 23, 24, 25)
    fake = column(2.5, 3, 3.5, 4, 30)
    radii = knn_radii(real, (3, 5))
    assert radii[3].tolist() == [3, 2, 2, 2, 2, 3] * 2
    assert radii[5].tolist() == [5, 4, 3, 3, 4, 5] * 2
    out = prdc(real, fake)
    # precision: 2.5, 3, 3.5, 4 lie in cluster A's k=3 balls; 30 is 5 from 25 (radius 3): 4/5
    assert out["precision"] == pytest.approx(4 / 5)
    # recall: fake k=3 radii 1.5, 1, 1, 1.5, 27; the balls hold reals 1..5 (around 2.5..4) and
    # 3..5, 20..25 (30's ball [3, 57]); real 0 is in none: 11/12
    assert out["recall"] == pytest.approx(11 / 12)
    # density: each of 2.5..4 lies in all six cluster-A k=5 balls (24), 30 on the edge of 25's
    # ball [20, 30] (1): 25 / (k=5 x 5 fakes) = 1
    assert out["density"] == pytest.approx(1.0)
    # coverage: the six A balls and 25's ball hold a fake: 7/12
    assert out["coverage"] == pytest.approx(7 / 12)


def test_chunked_equals_unchunked():
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(97, 5, generator=g), torch.randn(83, 5, generator=g) + 0.3
    whole = prdc(real, fake, chunk=10_000)
    assert prdc(real, fake, chunk=7) == whole and prdc(real, fake, chunk=1) == whole
    assert 0 < whole["precision"] < 1 and 0 < whole["coverage"] < 1
    for k, radius in knn_radii(real, (3, 5), chunk=4).items():
        assert torch.equal(radius, knn_radii(real, (k,), chunk=10_000)[k])


def test_too_few_samples_give_nan_with_the_reason():
    with pytest.warns(RuntimeWarning, match=r"5 real samples \(< 6\)"):
        out = prdc(torch.randn(5, 2), torch.randn(10, 2))
    assert all(math.isnan(v) for v in out.values())
    with pytest.warns(RuntimeWarning, match=r"3 generated samples \(< 4\)"):
        prdc(torch.randn(10, 2), torch.randn(3, 2))


def test_all_four_are_higher_is_better_per_extractor():
    for name in NAMES:
        assert registry.higher_is_better(f"metrics/{name}") is True
        assert registry.higher_is_better(f"metrics/{name}_classifier") is True


def test_one_shared_state_per_suite_real_side_computed_once_and_cached(monkeypatch, tmp_path):
    g = torch.Generator().manual_seed(3)
    real, fakes = torch.randn(60, 1, 2, 2, generator=g), torch.randn(2, 40, 1, 2, 2, generator=g)
    expected = [prdc(real.flatten(1), fake.flatten(1)) for fake in fakes]
    calls = []
    radii = prdc_module.knn_radii
    monkeypatch.setattr(prdc_module, "knn_radii", lambda x, ks, *a: calls.append(ks) or radii(x, ks, *a))
    suite = MetricSuite(torch.nn.Flatten(), 4, extra=NAMES)
    assert len({id(m.state) for m in suite.extra.values()}) == 1  # the four share one state
    suite.add_real(real)
    results = []
    for fake in fakes:
        suite.reset_fake()
        suite.add_fake(fake)
        results.append({k: v for k, v in suite.compute().items() if k in NAMES})
        assert results[-1] == expected[len(results) - 1]
    # real radii once for the run, generated radii once per evaluation: not once per metric
    assert calls == [(3, 5), (3,), (3,)]
    path = str(tmp_path / "ref.pt")
    suite.save_real(path, "id")
    cached = MetricSuite(torch.nn.Flatten(), 4, extra=NAMES)
    assert cached.load_real(path, "id")
    cached.add_fake(fakes[1])
    assert {k: v for k, v in cached.compute().items() if k in NAMES} == results[1]
    # a cache written without them is recomputed (with a warning), not half-used
    plain = MetricSuite(torch.nn.Flatten(), 4)
    plain.add_real(real)
    plain.save_real(path, "id")
    with pytest.warns(UserWarning, match="prdc_real_features is missing"):
        assert not MetricSuite(torch.nn.Flatten(), 4, extra=NAMES).load_real(path, "id")


def test_trained_logged_evaluated_and_compared(cfg_factory, tmp_path):
    from spectral_gan.cli.compare import main as compare
    from spectral_gan.training.run import train
    from tests.test_cli_tools import run
    from tests.test_train import TINY_IMAGES, scalars

    run_dir = tmp_path / "sweep" / "run"
    train(cfg_factory(*TINY_IMAGES, "steps=2", "eval.every=1", "eval.num_samples=64",
                      run_dir=run_dir))  # eval.prdc is on by default
    logged = scalars(str(run_dir))
    for name in NAMES:
        assert [s for s, _ in logged[f"metrics/{name}_classifier"]] == [1, 2]
    assert compare([str(tmp_path / "sweep")]) == 0
    with open(tmp_path / "sweep" / "comparison.csv") as f:
        row = next(csv.DictReader(f))
    for name in NAMES:  # higher is better: a seed's best is its maximum
        values = [v for _, v in logged[f"metrics/{name}_classifier"]]
        assert float(row[f"{name}_classifier_best"]) == pytest.approx(max(values))
        assert (tmp_path / "sweep" / f"metrics_{name}_classifier.png").exists()
    out = tmp_path / "eval.json"
    proc = run("spectral_gan.cli.eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
               "eval.num_samples=64", "eval.inception=false", "eval.kid=false", f"out={out}",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    for name in NAMES:
        assert 0 <= result["metrics"][f"{name}_classifier"] <= (5 if name == "density" else 1)
        assert f"{name}_classifier: " in proc.stdout
    assert result["protocol"]["classifier"]["feature_metrics"] == list(NAMES)
