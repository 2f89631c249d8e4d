"""The CNN robustness study's runner (scripts/sn_settings_cnn.py, issue 37 item 4), without a GPU:
every one of its 84 configs composes as the study means it, the dry run trains and resumes, the
budget starts only what fits, and the tables render as `make results` renders them."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO


def load(name: str):
    sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = load("sn_settings_cnn")
tables = load("sn_settings_cnn_tables")


def test_all_84_runs_compose_with_the_defaults_networks_and_length(cfg_factory):
    jobs = runner.plan(list(tables.SETTINGS), list(tables.NORMS), list(tables.SEEDS))
    assert len(jobs) == 84 and len({runner.key(j) for j in jobs}) == 84
    assert [j["seed"] for j in jobs[:42]] == [0] * 42  # one seed of every cell first
    for job in jobs:
        cfg = cfg_factory(*runner.overrides(job, "gpu", None, []), fast=False)
        setting = tables.setting(job["setting"])
        assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "32-true"
        assert (cfg.steps, cfg.batch_size, cfg.generator.ch, cfg.discriminator.ch) == (1600, 64, 48, 32)
        assert cfg.n_dis == setting["n_dis"] == job["n_dis"] and cfg.seed == job["seed"]
        for net in ("g", "d"):
            assert cfg.optimizer[net].lr == setting["optimizer"][net]["lr"]
            assert list(cfg.optimizer[net].betas) == setting["optimizer"][net]["betas"]
        assert cfg.ema.decay == 0 and cfg.eval.every == 0 and cfg.eval.num_samples == 2000
        assert cfg.eval.classifier == "auto" and cfg.loss.name == "hinge" and cfg.data._target_.endswith("MNIST5kDataModule")
        assert cfg.monitor.svd_every == cfg.monitor.lipschitz_every == 0


def test_the_dry_run_trains_scores_and_resumes(tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "sn_settings_cnn.py"), "--dry-run", "--steps", "1",
           "--settings", "F", "--norms", "gp", "--seeds", "0", "--jobs", "1",
           "--root", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    env = dict(os.environ, SPECTRAL_GAN_OUTPUTS=str(tmp_path / "outputs"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "runs" / "sn_settings_cnn.json").read_text())
    (run,) = data["runs"]
    assert (run["setting"], run["norm"], run["seed"], run["n_dis"]) == ("F", "gp", 0, 5)
    assert run["returncode"] == 0 and run["last_step"] == 1 and run["fid"] > 0 and run["is"] >= 1
    assert "sn_setting=F norm=gp seed=S trainer=cpu" in data["commands"][0]
    page = (tmp_path / "runs" / "results.md").read_text()
    assert "<!-- data:sn_settings_cnn:fid:start -->" in page and "| gp |" in page
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "sn_settings_cnn.json", "sn_settings_cnn.md", "samples.tar.gz", "failed_tails.txt"}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "1 run(s) done before, 0 to run" in again.stdout
    assert len(json.loads((tmp_path / "runs" / "sn_settings_cnn.json").read_text())["calls"]) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_without_a_gpu_only_the_dry_run_trains(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "sn_settings_cnn.py"),
                           "--root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "no CUDA GPU" in proc.stdout and not any(tmp_path.iterdir())


def test_the_budget_starts_only_runs_that_end_in_time():
    jobs = [{"name": n, "n_dis": d} for n, d in (("long", 5), ("long2", 5), ("short", 1))]
    ran = []
    left = runner.schedule(jobs, 1, time.monotonic() + 5, lambda j: ran.append(j["name"]),
                           lambda j: 100.0 if j["n_dis"] == 5 else 1.0)
    assert ran == ["short"] and [j["name"] for j in left] == ["long", "long2"]


def fake_runs(seeds=(0, 1)) -> list[dict]:
    runs = []
    for s in tables.SETTINGS:
        for i, n in enumerate(tables.NORMS):
            for seed in seeds:
                worse = 3.0 if (s, n) == ("F", "sn") else 1.0
                runs.append({"setting": s, "norm": n, "seed": seed, "n_dis": tables.n_dis(s),
                             "command": f"spectral-gan-train sn_setting={s} norm={n} seed={seed}",
                             "returncode": 0, "wall_s": 60.0, "fid": 100.0 * worse + 10 * i + 2 * seed,
                             "is": (1.2 if n == "bn" and seed else 5.0 - i / 10) / worse,
                             "diverged": False, "call": 1})
    return runs


def test_tables_render_like_the_mlp_study_and_wait_for_complete_rows():
    results = load("results")
    call = {"date": "2026-12-05", "device": "GPU", "torch": "2.11", "cuda": "13.0", "jobs": 14,
            "finished": 84, "wall_s": 600.0, "mean_run_s": {"1": 90.0, "5": 250.0}}
    data = runner.study(fake_runs(), [call], 1600, "abc1234")
    names = [t["name"] for t in data["tables"]]
    assert names == ["settings", "fid", "is", "f_norms", "sn_by_setting", "gp_by_setting", "calls"]
    text = {t["name"]: results.render_table(data, t) for t in data["tables"]}
    assert "| sn | 111 ± 1 |" in text["fid"] and "(1/2)" in text["fid"]  # bn's collapsed seed
    assert "**" in text["fid"] and "| A | 1e-4 | (0.5, 0.9) | 5 |" in text["settings"]
    assert "Difference from `norm=sn`" in text["f_norms"] and "| 14 | 84 | 10.0 min | 1.5 / 4.2 |" in text["calls"]
    for table in data["tables"]:  # what tests/test_results_data.py asks of every study
        if table.get("kind") != "table":
            assert all(len(r["values"]) == 2 for r in table["rows"])
    partial = runner.study(fake_runs(seeds=(0,)), [call], 1600, "abc1234")
    assert [t["name"] for t in partial["tables"]] == ["settings", "fid", "is", "calls"]
    assert "(1 of 2 seeds)" in results.render_table(partial, partial["tables"][1])
