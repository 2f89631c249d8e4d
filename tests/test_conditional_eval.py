"""Evaluation of class-conditional generators (issue 17, item 4): balanced labels, class accuracy
and intra-class FID (Miyato & Koyama 2018, Section 5), and the refusals around them.

The stand-in generators return real mnist5k digits: of the requested class, or of the next one.
Both return the same images over an evaluation, so their marginal (and plain FID) is the same;
only the conditional metrics can tell them apart."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

import spectral_gan.checkpoints.evaluate as checkpoint_eval
import spectral_gan.evaluation.evaluator as evaluation
from spectral_gan.data.embedded import MNIST5kDataModule
from spectral_gan.errors import ConfigError
from spectral_gan.evaluation import BALANCED, Evaluator, balanced_labels
from spectral_gan.metrics import registry
from spectral_gan.metrics.suite import MetricSuite
from spectral_gan.data import DigitsDataModule, SyntheticImages

SMALL = {"num_samples": 500, "batch_size": 125, "cache_dir": None}


class DigitsOfClass:
    """A conditional "generator": for label y, real digits of class ``(y + shift) % 10``. Each
    class's digits come in one fixed order, so one evaluation (50 samples per class) gets the
    same images whatever ``shift``; only which label they answer changes."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, shift: int = 0) -> None:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(7))
        self.pools = [images[order[labels[order] == c]] for c in range(10)]
        self.used = [0] * 10
        self.shift = shift
        self.calls: list[tuple[int, torch.Tensor]] = []

    def __call__(self, n: int, labels: torch.Tensor) -> torch.Tensor:
        self.calls.append((n, labels.clone()))
        target = (labels.cpu() + self.shift) % 10
        out = torch.empty(n, *self.pools[0].shape[1:])
        for c in target.unique().tolist():
            where = (target == c).nonzero().squeeze(1)
            start = self.used[c]
            out[where] = self.pools[c][start:start + len(where)]
            self.used[c] += len(where)
        return out


@pytest.fixture(scope="module")
def mnist() -> MNIST5kDataModule:
    dm = MNIST5kDataModule()
    dm.images, dm.targets  # noqa: B018  load once for the module
    return dm


def test_intra_fid_and_class_accuracy_measure_the_conditioning(mnist):
    ev = Evaluator.from_config(mnist, SMALL, num_classes=10)
    assert ev.metric_names() == ["metrics/fid_classifier", "metrics/is_classifier",
                                 "metrics/precision_classifier", "metrics/recall_classifier",
                                 "metrics/density_classifier", "metrics/coverage_classifier",
                                 "metrics/intra_fid_classifier", "metrics/class_accuracy",
                                 "metrics/best_fid_classifier"]
    # 50 samples per class with 128-d features: rank-deficient covariances, computable, warned
    with pytest.warns(UserWarning, match="intra-class FID from as few as"):
        right = ev.evaluate(DigitsOfClass(mnist.images, mnist.targets), "cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrong = ev.evaluate(DigitsOfClass(mnist.images, mnist.targets, shift=1), "cpu")
    assert not [w for w in caught if "intra-class FID" in str(w.message)]  # warned once
    emitted = {n for n in right if "_std" not in n}  # IS's std is not a metric name
    assert emitted == {n for n in ev.metric_names() if "/best_" not in n}
    assert set(wrong) == set(right)

    assert right["metrics/class_accuracy"] >= 0.9
    assert wrong["metrics/class_accuracy"] <= 0.1
    # the same images, so the same marginal: plain FID cannot see the wrong classes ...
    assert wrong["metrics/fid_classifier"] == pytest.approx(right["metrics/fid_classifier"],
                                                            rel=1e-4)
    # ... intra-class FID can (measured: 53 against 2,500; the right one is real digits against
    # real digits of their class, its value the bias of 50 samples a side in 128-d)
    assert right["metrics/intra_fid_classifier"] < 100
    assert right["metrics/intra_fid_classifier"] < 0.1 * wrong["metrics/intra_fid_classifier"]

    intra = ev.protocol["classifier"]["intra_fid"]
    assert intra["n_fake"] == [50] * 10 and sum(intra["n_real"]) == 500
    assert min(intra["n_real"]) >= 2 and intra["reference_cache"] is None
    assert ev.protocol["conditional"] == {"num_classes": 10, "labels": BALANCED}
    json.dumps(ev.protocol)  # it goes into spectral-gan-eval's JSON


def test_labels_are_balanced_over_the_whole_evaluation(mnist):
    ev = Evaluator.from_config(mnist, {**SMALL, "num_samples": 300, "batch_size": 70},
                               num_classes=10)
    gen = DigitsOfClass(mnist.images, mnist.targets)
    ev.evaluate(gen, "cpu")
    assert [n for n, _ in gen.calls] == [70, 70, 70, 70, 20]
    labels = torch.cat([y for _, y in gen.calls])
    assert labels.dtype == torch.long
    assert torch.equal(labels, torch.arange(300) % 10)  # sample i gets class i mod 10
    assert torch.bincount(labels).tolist() == [30] * 10
    # a count that does not divide: the first classes get one more
    assert torch.bincount(torch.cat([balanced_labels(i, min(100, 305 - i), 10)
                                     for i in range(0, 305, 100)])).tolist() == [31] * 5 + [30] * 5


def test_unconditional_evaluation_is_unchanged(mnist):
    ev = Evaluator.from_config(mnist, {**SMALL, "num_samples": 200, "batch_size": 100,
                                       "intra_fid": True, "prdc": False})  # tests/test_prdc.py
    calls = []

    def generate(n):  # one argument only: a second would fail
        calls.append(n)
        return mnist.images[:n]

    out = ev.evaluate(generate, "cpu")
    assert calls == [100, 100]
    assert set(out) == {"metrics/fid_classifier", "metrics/is_classifier",
                        "metrics/is_std_classifier"}
    assert ev.metric_names() == ["metrics/fid_classifier", "metrics/is_classifier",
                                 "metrics/best_fid_classifier"]
    assert "conditional" not in ev.protocol and ev.intra == {}
    assert "intra_fid" not in ev.protocol["classifier"]


def test_the_per_class_reference_is_recomputed_next_to_a_cached_one(tmp_path):
    """The suites' reference statistics are cached as before; the per-class ones are read again
    (``reference_labeled``) by each evaluator and give the same intra-class FID."""
    dm = DigitsDataModule()
    settings = {"num_samples": 200, "batch_size": 100, "cache_dir": str(tmp_path)}
    values = []
    for _ in range(2):
        ev = Evaluator.from_config(dm, settings, num_classes=10)
        out = ev.evaluate(lambda n, labels: dm.images[:n], "cpu")
        values.append(out["metrics/intra_fid_classifier"])
        assert sum(ev.protocol["classifier"]["intra_fid"]["n_real"]) == 200
    assert ev.protocol["classifier"]["reference_cache"].startswith(str(tmp_path))
    assert len(list(tmp_path.rglob("*.pt"))) == 1  # the suite's file only
    assert values[0] == pytest.approx(values[1], rel=1e-6)


def _counting_inception_suite(kid: bool = False, kid_subset_size: int = 1000, extra=()):
    """An Inception stand-in (8-d features, logits) that counts the images it sees."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 8))
    net.images = 0
    net.register_forward_hook(lambda m, args, out: setattr(m, "images", m.images + len(args[0])))
    suite = MetricSuite(net, 8, logits=None, kid=kid, kid_subset_size=kid_subset_size, extra=extra)
    suite.net = net
    return suite, {"extractor": "stand-in", "weights": "random", "input": "1x32x32"}


@pytest.mark.parametrize("intra_fid,expected", [
    ("auto", ["metrics/intra_fid_classifier"]),
    (True, ["metrics/intra_fid_classifier", "metrics/intra_fid"]),
    (False, []),
])
def test_intra_fid_switch(monkeypatch, intra_fid, expected):
    monkeypatch.setattr(evaluation, "inception_suite", _counting_inception_suite)
    ev = Evaluator.from_config(DigitsDataModule(), {"inception": True, "intra_fid": intra_fid},
                               num_classes=10)
    names = ev.metric_names()
    assert [n for n in names if "intra_fid" in n] == expected
    assert "metrics/class_accuracy" in names  # with the classifier, whatever intra_fid says
    assert ("intra_fid" in ev.protocol["inception"]) == (intra_fid is True)


def test_intra_fid_extracts_features_once_per_batch_for_all_classes(monkeypatch):
    """Intra-class FID costs no extra pass of the extractor: the suite's FID pass of each batch
    serves all classes (MetricSuite's shared pass)."""
    monkeypatch.setattr(evaluation, "inception_suite", _counting_inception_suite)
    dm = DigitsDataModule()
    seen = {}
    for intra_fid in (False, True):
        ev = Evaluator.from_config(dm, {"num_samples": 200, "batch_size": 50, "inception": True,
                                        "classifier": False, "intra_fid": intra_fid,
                                        "cache_dir": None}, num_classes=10)
        out = ev.evaluate(lambda n, labels: dm.images[:n], "cpu")
        seen[intra_fid] = ev.suites["inception"][0].net.images
    assert seen[False] == 200 + 200  # reference + generated, through the suite's FID
    assert seen[True] == seen[False]  # the per-class statistics reuse that pass
    assert out["metrics/intra_fid"] >= 0 and "metrics/class_accuracy" not in out


def test_conditional_generator_on_unlabelled_data_is_refused():
    with pytest.raises(ConfigError, match="the generator is class-conditional \\(10 classes\\) "
                                          "but data=synthetic has no labels"):
        Evaluator.from_config(SyntheticImages(channels=1, num_samples=100), {}, num_classes=10)
    with pytest.raises(ConfigError, match="the generator has 7 classes but data=digits has 10"):
        Evaluator.from_config(DigitsDataModule(), {}, num_classes=7)
    with pytest.raises(ConfigError, match="num_classes must be a positive integer"):
        Evaluator.from_config(DigitsDataModule(), {}, num_classes=True)


def test_intra_fid_needs_two_samples_per_class():
    with pytest.raises(ConfigError, match="eval.num_samples=15 is fewer than 2 x 10 classes; "
                                          "raise eval.num_samples or set eval.intra_fid=false"):
        Evaluator.from_config(DigitsDataModule(), {"num_samples": 15}, num_classes=10)
    # without intra-class FID a small evaluation is fine
    Evaluator.from_config(DigitsDataModule(), {"num_samples": 15, "intra_fid": False}, num_classes=10)


@pytest.mark.parametrize("value", ["maybe", 1, None])
def test_intra_fid_config_values(value):
    with pytest.raises(ConfigError,
                       match=f"eval.intra_fid must be auto, true or false, got {value!r}"):
        Evaluator.from_config(DigitsDataModule(), {"intra_fid": value}, num_classes=10)


def test_conditional_metrics_are_registered():
    assert not registry.higher_is_better("metrics/intra_fid")
    assert not registry.higher_is_better("metrics/intra_fid_classifier")
    assert registry.higher_is_better("metrics/class_accuracy")
    assert "requested class" in registry.spec("class_accuracy").description


class _ConditionalStandIn(nn.Module):
    """A loaded conditional generator as ``evaluate_checkpoint`` sees it."""

    conditional, num_classes, z_dim = True, 10, 4

    def __init__(self, digits: DigitsOfClass) -> None:
        super().__init__()
        self.digits = digits
        self.z_shapes: list[tuple[int, ...]] = []

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.z_shapes.append(tuple(z.shape))
        return self.digits(len(z), labels)


def test_spectral_gan_eval_evaluates_a_conditional_checkpoint(mnist, monkeypatch, tmp_path):
    generator = _ConditionalStandIn(DigitsOfClass(mnist.images, mnist.targets))
    info = {"checkpoint": str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "gen_step": 3,
            "generator_weights": "generator"}
    monkeypatch.setattr(checkpoint_eval, "load_generator",
                        lambda path, weights, trust=False: (generator, mnist, info))
    out = tmp_path / "eval.json"
    result = checkpoint_eval.evaluate_checkpoint(
        "last.ckpt", {**SMALL, "num_samples": 200, "batch_size": 100}, seed=0,
        device=torch.device("cpu"), out=str(out))
    assert generator.z_shapes == [(100, 4), (100, 4)]
    saved = json.loads(out.read_text())
    assert saved["metrics"]["class_accuracy"] >= 0.9
    assert {"fid_classifier", "intra_fid_classifier"} <= set(saved["metrics"])
    assert saved["protocol"]["conditional"]["num_classes"] == 10
    assert saved["protocol"]["classifier"]["intra_fid"]["n_fake"] == [20] * 10
    assert result["metrics"] == saved["metrics"]
