"""Collapse is reported, not hidden: spectral_gan/training/health.py and its use in training (issue #12)."""
from __future__ import annotations

import torch

from spectral_gan.training import health
from spectral_gan.training.run import train
from tests.test_train import TINY_IMAGES, scalars


def test_diversity_is_zero_for_a_constant_batch_and_positive_otherwise():
    assert health.diversity(torch.full((16, 1, 8, 8), -1.0)) == 0.0
    assert health.diversity(torch.randn(16, 1, 8, 8)) > 0.5
    assert health.diversity(torch.randn(1, 2)) == 0.0  # one sample has no spread


def test_assess_names_each_sign_of_collapse():
    assert health.assess(0.8, stalled_logs=2, scores={"metrics/is_classifier": 6.0}) == []
    reasons = health.assess(0.01, stalled_logs=3,
                            scores={"metrics/is_classifier": 1.0, "metrics/is_std_classifier": 0.01,
                                    "metrics/fid_classifier": 3000.0})
    assert len(reasons) == 3
    assert "diversity is 0.010" in reasons[0]
    assert "gradient norm" in reasons[1] and "3 log steps" in reasons[1]
    assert "is_classifier is 1.00" in reasons[2]
    assert health.assess(None) == []


def test_a_healthy_run_logs_health_zero_at_the_end(cfg_factory, tmp_path):
    # Without evaluation metrics (an untrained generator's samples are all one class to the
    # classifier): the end-of-training check still runs, on diversity and D's gradient.
    result = train(cfg_factory(*TINY_IMAGES, "steps=20", "eval.every=0", "eval.classifier=false"))
    logged = scalars(str(tmp_path))
    assert logged["health/collapsed"] == [(20, 0.0)]
    assert logged["health/sample_diversity"][-1][1] > health.DIVERSITY_FLOOR
    assert result["health"] == []


def test_a_collapsed_generator_is_flagged_logged_and_reported(cfg_factory, tmp_path, caplog):
    result = train(cfg_factory(*TINY_IMAGES, "steps=2", "eval.every=0", "ema.decay=0"))
    module = result["module"]
    last_conv = [m for m in module.G.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():  # every z now gives the same image: tanh(bias)
        last_conv.weight.zero_()
    reasons = module.check_health(7)
    assert reasons and "diversity is 0.000" in reasons[0]
    assert "the samples have collapsed" in caplog.text
    assert module.check_health(8) == reasons  # still collapsed, still logged: not printed again
    assert caplog.text.count("the samples have collapsed") == 1
    module.logger.experiment.flush()  # training has ended: write the event out now
    logged = scalars(str(tmp_path))
    assert (7, 1.0) in logged["health/collapsed"]


def test_a_discriminator_that_stopped_learning_is_reported(cfg_factory, monkeypatch):
    # grad_norm/d as a D that separates everything by its whole margin shows it: 0 on every log step.
    from spectral_gan.training.gan import GAN
    monkeypatch.setattr(GAN, "d_grad_norm", lambda self: torch.zeros(()))
    result = train(cfg_factory(*TINY_IMAGES, "steps=3", "eval.every=0"))
    assert result["module"]._stalled_logs == 3
    assert any("gradient norm" in r for r in result["health"])


def test_no_collapse_warning_before_the_ema_generator_starts(cfg_factory, tmp_path, caplog):
    # issue 35: a 20-step smoke run of the default (EMA from step 1000) warned of collapse: the
    # samples it judged were those of an EMA copy that had not begun averaging.
    result = train(cfg_factory(*TINY_IMAGES, "steps=2", "eval.every=0", "ema.decay=0.9",
                               "ema.start=1000"))
    module = result["module"]
    assert module.G_ema is not None and module.sampler is module.G  # not averaging yet
    last_conv = [m for m in module.G.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.weight.zero_()
    assert "diversity is 0.000" in module.check_health(2)[0]  # collapsed, and logged as such
    assert "the samples have collapsed" not in caplog.text


def test_the_cli_prints_the_wall_time_and_where_things_are(capsys):
    from spectral_gan.cli.train import _report

    class Trainer:
        is_global_zero = True

    _report({"trainer": Trainer(), "run_dir": "r", "gen_step": 5, "samples": "nowhere.png",
             "checkpoint": "r/checkpoints/last.ckpt", "health": ["sample diversity is 0.000"]}, 65.4)
    out = capsys.readouterr().out
    assert "Trained 5 generator steps in 1 min 05 s" in out
    assert "r/checkpoints/last.ckpt" in out
    assert "collapsed" not in out  # said once, during the run (check_health), not again here
