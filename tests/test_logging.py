"""Issue 16 (3): metrics go through Lightning's ``self.log`` (generator steps on the x-axis), so
ModelCheckpoint and EarlyStopping monitor them from config; loggers compose, offline ones too."""
from __future__ import annotations

import csv
import importlib.util
import os

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from spectral_gan.training.callbacks import BestCheckpoint, EvalEarlyStopping
from spectral_gan.errors import ConfigError
from spectral_gan.training.run import train
from tests.conftest import run_cli
from tests.test_train import RING, TINY_IMAGES, scalars


def callback(result, kind):
    return next(c for c in result["trainer"].callbacks if type(c) is kind)


def test_metrics_reach_callback_metrics_and_best_ckpt_is_a_model_checkpoints(cfg_factory, tmp_path):
    # A stock ModelCheckpoint from the command line monitors the same metric as best.ckpt.
    result = train(cfg_factory(
        *TINY_IMAGES, "steps=6", "eval.every=2", "checkpoint_every=100",
        "callbacks.best_checkpoint.monitor=metrics/fid_classifier",
        "+callbacks.top_fid._target_=pytorch_lightning.callbacks.ModelCheckpoint",
        "+callbacks.top_fid.monitor=metrics/fid_classifier",
        f"+callbacks.top_fid.dirpath={tmp_path / 'top'}",
        "+callbacks.top_fid.every_n_train_steps=2",  # each evaluation (generator steps)
        "+callbacks.top_fid.save_top_k=2"))
    logged = scalars(str(tmp_path))
    fids = logged["metrics/fid_classifier"]
    assert [s for s, _ in fids] == [2, 4, 6]  # generator steps on the x-axis
    assert [s for s, _ in logged["loss/d"]] == [1, 2, 3, 4, 5, 6]
    metrics = result["trainer"].callback_metrics
    for name in ("metrics/fid_classifier", "metrics/is_classifier", "metrics/best_fid_classifier",
                 "loss/d", "loss/g", "grad_norm/d", "health/collapsed"):
        assert name in metrics, name
    assert float(metrics["metrics/fid_classifier"]) == pytest.approx(fids[-1][1])

    best = callback(result, BestCheckpoint)
    assert isinstance(best, ModelCheckpoint) and best.mode == "min"  # FID: lower is better
    step, value = min(fids, key=lambda sv: sv[1])
    assert result["best_checkpoint"] == str(tmp_path / "checkpoints" / "best.ckpt")
    assert best.best_model_path == result["best_checkpoint"]
    assert float(best.best_model_score) == pytest.approx(value)
    saved = torch.load(result["best_checkpoint"], weights_only=True)
    assert saved["global_step"] == step and saved["best_metric"] == pytest.approx(value)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == [
        "best.ckpt", "last.ckpt"]  # no best-v1.ckpt, no stray temporary files
    stock = callback(result, ModelCheckpoint)
    assert float(stock.best_model_score) == pytest.approx(value) and len(stock.best_k_models) == 2


def test_best_checkpoint_takes_the_monitors_direction_from_the_registry(cfg_factory, tmp_path):
    result = train(cfg_factory(*TINY_IMAGES, "steps=4", "eval.every=1",
                               "callbacks.best_checkpoint.monitor=metrics/is_classifier"))
    best = callback(result, BestCheckpoint)
    assert best.mode == "max"  # IS: higher is better
    assert float(best.best_model_score) == pytest.approx(
        max(v for _, v in scalars(str(tmp_path))["metrics/is_classifier"]))


def test_best_checkpoint_refuses_a_metric_without_a_direction():
    with pytest.raises(ConfigError, match="mode=min or mode=max"):
        BestCheckpoint(monitor="loss/g")
    assert BestCheckpoint(monitor="loss/g", mode="min").mode == "min"


def test_early_stopping_from_config_stops_the_run(cfg_factory, tmp_path):
    # No evaluation can beat the first by 1e9: the run stops at the second (patience 1).
    result = train(cfg_factory(*RING, "steps=10", "eval.every=1", "callbacks=[default,early_stopping]",
                               "callbacks.early_stopping.patience=1",
                               "callbacks.early_stopping.min_delta=1e9"))
    stopper = callback(result, EvalEarlyStopping)
    assert stopper.monitor == "metrics/reverse_kl" and stopper.mode == "min"
    assert result["gen_step"] == 2 and stopper.wait_count == 1
    assert torch.load(result["checkpoint"], weights_only=True)["global_step"] == 2  # last.ckpt


def test_several_loggers_at_once_share_the_generator_step_axis(cfg_factory, tmp_path):
    train(cfg_factory(*RING, "steps=3", "logger=many"))
    assert [s for s, _ in scalars(str(tmp_path))["loss/d"]] == [1, 2, 3]
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss/d")]
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert "epoch" not in rows[0] or not rows[0]["epoch"]


def test_logger_configs_follow_their_users_habits(cfg_factory, tmp_path, monkeypatch):
    """issue 35: one MLflow store per output root (MLFLOW_TRACKING_URI wins), W&B online unless
    WANDB_MODE says otherwise, the run's name and tags passed to both."""
    monkeypatch.setenv("SPECTRAL_GAN_OUTPUTS", str(tmp_path / "out"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = cfg_factory("logger=[tensorboard,csv,wandb,mlflow]", "name=probe", "tags=[sn,ablation]")
    assert set(cfg.logger) == {"tensorboard", "csv", "wandb", "mlflow"}
    assert cfg.logger.wandb.offline is False and cfg.logger.wandb.save_dir == str(tmp_path)
    assert cfg.logger.wandb.name == cfg.logger.mlflow.run_name == "probe"
    assert list(cfg.logger.wandb.tags) == ["sn", "ablation"]
    assert dict(cfg.logger.mlflow.tags) == {"sn": "true", "ablation": "true"}
    assert cfg.logger.mlflow.tracking_uri == f"sqlite:///{tmp_path / 'out'}/mlflow.db"
    assert cfg.logger.mlflow.artifact_location == f"{tmp_path / 'out'}/mlartifacts"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    cfg = cfg_factory("logger=mlflow")
    assert cfg.logger.mlflow.tracking_uri == "http://tracking.example:5000"
    assert cfg.logger.mlflow.artifact_location is None  # the server's


@pytest.mark.parametrize("logger,package", [("wandb", "wandb"), ("mlflow", "mlflow")])
def test_a_missing_logger_package_is_one_sentence_naming_the_extra(cfg_factory, monkeypatch,
                                                                    logger, package):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(ConfigError, match=rf"logger {logger} needs the {package} package.*"
                                          rf"pip install 'spectral-gan\[{package}\]'"):
        train(cfg_factory(*RING, "steps=1", f"logger=[tensorboard,{logger}]"))


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_missing_wandb_from_the_cli_exits_2_without_a_traceback(tmp_path):
    proc = run_cli(*RING, "steps=1", "logger=wandb", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "pip install 'spectral-gan[wandb]'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                    reason="needs the mlflow extra: pip install 'spectral-gan[mlflow]'")
def test_mlflow_keeps_a_sweeps_runs_in_one_store_with_their_names_and_tags(cfg_factory, tmp_path,
                                                                          monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("SPECTRAL_GAN_OUTPUTS", str(tmp_path / "out"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ids = []
    for seed in (0, 1):  # two runs, two run directories, one output root
        result = train(cfg_factory(*RING, "steps=3", "eval.every=3", "logger=[tensorboard,mlflow]",
                                   f"seed={seed}", f"name=ring{seed}", "tags=[smoke]",
                                   run_dir=tmp_path / f"run{seed}"))
        ids.append(next(lg for lg in result["trainer"].loggers
                        if type(lg).__name__ == "MLFlowLogger").run_id)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out'}/mlflow.db")
    history = client.get_metric_history(ids[0], "loss/d")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(ids[1], "metrics/reverse_kl")] == [3]
    runs = [client.get_run(i) for i in ids]
    assert [r.info.experiment_id for r in runs] == [runs[0].info.experiment_id] * 2
    assert [r.info.run_name for r in runs] == ["ring0", "ring1"]
    assert runs[0].data.tags["smoke"] == "true" and runs[0].data.params["n_dis"] == "1"


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                    reason="needs the mlflow extra: pip install 'spectral-gan[mlflow]'")
def test_mlflow_honours_mlflow_tracking_uri(cfg_factory, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("SPECTRAL_GAN_OUTPUTS", str(tmp_path / "out"))
    result = train(cfg_factory(*RING, "steps=2", "logger=[tensorboard,mlflow]"))
    run_id = next(lg for lg in result["trainer"].loggers if type(lg).__name__ == "MLFlowLogger").run_id
    assert MlflowClient(tracking_uri=store).get_metric_history(run_id, "loss/d")
    assert not (tmp_path / "out" / "mlflow.db").exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None,
                    reason="needs the wandb extra: pip install 'spectral-gan[wandb]'")
def test_wandb_offline_writes_its_run_under_the_run_dir(cfg_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")  # the user's switch; online is the default
    train(cfg_factory(*RING, "steps=2", "logger=[tensorboard,wandb]"))
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
