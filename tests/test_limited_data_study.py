"""scripts/limited_data_study.py (issue 36's study): every run it launches composes as meant, and a
training-set size becomes a table only when every method has every seed."""
from __future__ import annotations

import importlib.util
import itertools

import pytest

from tests.conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("limited_data_study",
                                                  REPO / "scripts" / "limited_data_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


study = _script()


@pytest.mark.parametrize("method", list(study.METHODS))
def test_every_method_composes_at_every_size(cfg_factory, method):
    experiment, overrides = study.METHODS[method]
    for size in study.SIZES:
        cfg = cfg_factory(f"experiment={experiment}", *overrides, f"data.train_size={size}",
                          "seed=1", *study.STUDY_SETTINGS, fast=False)
        assert (cfg.steps, cfg.ema.start, cfg.threads, cfg.data.train_size) == (800, 500, 1, size)
        assert cfg.monitor.svd_every == 0 and not cfg.eval.classifier
    expected = {"none": ("none", "none", "hinge"), "sn": ("sn", "none", "hinge"),
                "bsn": ("bsn", "none", "hinge"), "gp": ("none", "wgan_gp", "hinge"),
                "r3gan": ("none", "r1r2", "rpgan"), "sn+diffaugment": ("sn", "none", "hinge"),
                "sn+lecam": ("sn", "none", "hinge")}[method]
    assert (cfg.norm.weight, cfg.norm.penalty, cfg.loss.name) == expected
    assert (cfg.augment.policy != "none") == (method == "sn+diffaugment")
    assert (cfg.lecam_weight > 0) == (method == "sn+lecam")


def test_a_size_is_tabled_only_when_complete():
    seeds = [0, 1, 2]
    quality = {"fid_classifier": 50.0, "precision": 0.8, "recall": 0.5, "balance": 0.07}
    runs = {study.run_name(m, 500, s): {"name": study.run_name(m, 500, s), "quality": quality}
            for m, s in itertools.product(study.METHODS, seeds)}
    table = study.size_table(500, runs, seeds)
    assert table["baseline"] == "`sn`" and len(table["rows"]) == len(study.METHODS)
    assert table["rows"][0]["values"][0] == [50.0, 0.8, 0.5, 0.07]
    del runs[study.run_name("r3gan", 500, 2)]
    assert study.size_table(500, runs, seeds) is None
    assert len(study.jobs_for(["sn", "gp"], [500, 1000], seeds, [])) == 12
