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
    for size in study.METHOD_SIZES.get(method, study.SIZES):
        cfg = cfg_factory(f"experiment={experiment}", *overrides, f"data.train_size={size}",
                          "seed=1", *study.STUDY_SETTINGS, fast=False)
        assert (cfg.steps, cfg.ema.start, cfg.threads, cfg.data.train_size) == (800, 500, 1, size)
        assert cfg.monitor.svd_every == 0 and not cfg.eval.classifier
    expected = {"none": ("none", "none", "hinge"), "sn": ("sn", "none", "hinge"),
                "bsn": ("bsn", "none", "hinge"), "gp": ("none", "wgan_gp", "hinge"),
                "r3gan": ("none", "r1r2", "rpgan"), "r3gan-screened": ("none", "r1r2", "rpgan"),
                "sn+diffaugment": ("sn", "none", "hinge"),
                "sn+lecam": ("sn", "none", "hinge")}[method]
    assert (cfg.norm.weight, cfg.norm.penalty, cfg.loss.name) == expected
    assert (cfg.augment.policy != "none") == (method == "sn+diffaugment")
    assert (cfg.lecam_weight > 0) == (method == "sn+lecam")
    if method.startswith("r3gan"):  # the study's r3gan rows keep the gamma they ran with
        assert cfg.norm.penalty_weight == (0.05 if method == "r3gan" else float(study.GAMMA_PICK))


def test_a_size_is_tabled_only_when_complete():
    seeds = [0, 1, 2]
    quality = {"fid_classifier": 50.0, "precision": 0.8, "recall": 0.5, "balance": 0.07}
    runs = {study.run_name(m, n, s): {"name": study.run_name(m, n, s), "quality": quality}
            for m, n, s in itertools.product(study.METHODS, study.SIZES, seeds)
            if n in study.METHOD_SIZES.get(m, study.SIZES)}
    table = study.size_table(500, runs, seeds)
    assert table["baseline"] == "`sn`" and len(table["rows"]) == len(study.METHODS) - 1
    assert table["rows"][0]["values"][0] == [50.0, 0.8, 0.5, 0.07]
    # the screened gamma's row is at 5,000 digits only
    assert len(study.size_table(5000, runs, seeds)["rows"]) == len(study.METHODS)
    del runs[study.run_name("r3gan", 500, 2)]
    assert study.size_table(500, runs, seeds) is None
    assert len(study.jobs_for(["sn", "gp"], [500, 1000], seeds, [])) == 12
    assert len(study.jobs_for(["r3gan-screened"], list(study.SIZES), seeds, [])) == 3


def test_the_gamma_screen_sets_gamma_on_an_unused_seed_and_tables_each_run(cfg_factory):
    jobs = study.gamma_jobs(["0.01", "1"], [])
    name, method, size, seed, overrides = jobs[1]
    assert (method, size, seed) == ("r3gan-screened", 5000, 3) and name == "r3gan gamma=1, n=5000, seed 3"
    experiment, method_overrides = study.METHODS[method]
    cfg = cfg_factory(f"experiment={experiment}", *method_overrides, f"seed={seed}",
                      *study.STUDY_SETTINGS, *overrides, fast=False)
    assert (cfg.norm.penalty, cfg.norm.penalty_weight, cfg.loss.name) == ("r1r2", 1, "rpgan")
    assert seed not in [0, 1, 2]  # the study's tables' seeds chose nothing
    runs = {j[0]: {"quality": {"fid_classifier": fid, "precision": 0.6, "recall": 0.5,
                               "balance": 0.05}, "wall_s": 300.0}
            for j, fid in zip(jobs, [120.0, 80.0])}
    table = study.gamma_table(runs)
    assert [row[0] for row in table["rows"]] == ["0.01", "1"]
    assert table["rows"][1][1] == {"v": 80.0, "bold": True} and not table["rows"][0][1]["bold"]
    assert study.gamma_table({}) is None
    import check_default  # on sys.path once the study script is loaded

    text = check_default.results_script().render_table({"tables": [table]}, table)
    assert "| 1 | **80.0** | 60.0% | 50.0% | 5.0% | 5.0 min |" in text
