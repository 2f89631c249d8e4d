"""configs/debug/ (as in lightning-hydra-template), run tags, and the config tree at start."""
from __future__ import annotations

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from spectral_gan.config.tree import config_tree_text
from spectral_gan.training.run import train
from tests.conftest import REPO, run_cli
from tests.test_train import RING

DEBUG = sorted(p.stem for p in (REPO / "configs" / "debug").glob("*.yaml"))


def test_the_debug_group_has_the_template_configs():
    assert set(DEBUG) >= {"default", "fast_dev_run", "overfit", "profiler", "quiet"}


def test_without_debug_nothing_changes(cfg_factory):
    cfg = cfg_factory(fast=False)
    assert cfg.task_name == "train" and cfg.eval.every == 500 and cfg.extras.print_config is False
    assert "fast_dev_run" not in cfg.trainer and list(cfg.tags) == ["dev"]


@pytest.mark.parametrize("name", DEBUG)
def test_each_debug_config_composes(cfg_factory, name):
    cfg = cfg_factory(f"debug={name}", fast=False)
    assert cfg.trainer.enable_model_summary is False
    assert cfg.callbacks.progress_bar.refresh_rate == 0
    if name == "quiet":  # the training itself as without it: only the extras around it go
        assert cfg.task_name == "train" and cfg.steps == cfg_factory(fast=False).steps
        assert cfg.eval.every == 0
        assert cfg.extras.print_config is False
        return
    assert cfg.task_name == "debug" and cfg.eval is None and cfg.extras.print_config is True
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.deterministic is True
    assert {"fast_dev_run": cfg.trainer.get("fast_dev_run") == cfg.steps,
            "overfit": cfg.trainer.get("overfit_batches") == 1,
            "profiler": cfg.trainer.get("profiler") == "simple",
            "default": cfg.steps == 20}[name]


def test_command_line_beats_debug(cfg_factory):
    cfg = cfg_factory("debug=fast_dev_run", "steps=3", "n_dis=2", "trainer.accelerator=auto", fast=False)
    assert cfg.steps == 3 and cfg.trainer.fast_dev_run == 3 and cfg.trainer.accelerator == "auto"


def test_fast_dev_run_trains_and_prints_the_config_tree(tmp_path):
    proc = run_cli(*RING, "debug=fast_dev_run", "n_dis=2", "extras.print_config=true", cwd=tmp_path,
                   timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Trained 2 generator steps" in proc.stdout
    assert "fast_dev_run" in proc.stdout + proc.stderr  # Lightning's own mode, not a stand-in
    tree = proc.stdout.split("Trained")[0]
    for key in ("CONFIG", "discriminator", "trainer", "tags", "- debug"):
        assert key in tree, key
    assert (tmp_path / "outputs" / "debug" / "runs").is_dir()  # task_name: debug


def test_no_config_tree_when_off(tmp_path):
    proc = run_cli(*RING, "debug=fast_dev_run", "extras.print_config=false", cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CONFIG" not in proc.stdout and "Trained 2 generator steps" in proc.stdout


def test_config_tree_text_lists_every_top_level_key(cfg_factory):
    cfg = cfg_factory(fast=False)
    text = config_tree_text(cfg)
    branch = lambda key: text.index(f"── {key}\n")  # noqa: E731  a top-level branch of the tree
    for key in cfg:
        if key != "hydra":
            assert branch(key) > 0, key
    assert "── hydra" not in text
    assert branch("data") < branch("trainer") < branch("seed")  # groups first, then the rest


class RecordBatches(Callback):
    """Keeps the real batches each training step received."""

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append(batch.detach().cpu().clone())


def test_overfit_trains_on_one_fixed_batch(cfg_factory):
    cfg = cfg_factory(*RING, "debug=overfit", "steps=5", "logger=[]",
                      "+callbacks.record._target_=tests.test_debug.RecordBatches", fast=False)
    result = train(cfg)
    recorder = next(c for c in result["trainer"].callbacks if type(c).__name__ == "RecordBatches")
    assert result["gen_step"] == 5 and len(recorder.batches) == 5
    assert all(torch.equal(b, recorder.batches[0]) for b in recorder.batches)


def test_tags_reach_the_hyperparameters(cfg_factory, tmp_path):
    result = train(cfg_factory(*RING, "steps=2", "tags=[sn,ablation]"))
    assert result["module"].hparams["tags"] == ["sn", "ablation"]
    ckpt = torch.load(result["checkpoint"], weights_only=False)
    assert ckpt["hyper_parameters"]["tags"] == ["sn", "ablation"]
