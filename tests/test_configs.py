"""Configs are code: every sensible combination composes and instantiates."""
from __future__ import annotations

import itertools
import pytest

from spectral_gan.training.settings import GANSettings
from hydra.utils import instantiate
from omegaconf import OmegaConf

from spectral_gan.losses import AdversarialLoss
from spectral_gan.norms import NormHook
from tests.conftest import REPO

GROUP = lambda g: sorted(p.stem for p in (REPO / "configs" / g).glob("*.yaml"))  # noqa: E731
IMAGE_DATA = [d for d in GROUP("data") if d not in ("ring", "grid")]
POINT_DATA = ["ring", "grid"]


def combos():
    for data in IMAGE_DATA:
        for arch in ("dcgan", "resnet", "mlp"):
            yield data, arch
    for data in POINT_DATA:
        yield data, "mlp"


def test_groups_have_the_options_the_issue_names():
    assert set(GROUP("norm")) >= {"none", "sn", "bn"}
    from spectral_gan.losses import LOSSES
    assert {"hinge", "ns", "wgan", "lsgan"} <= set(GROUP("loss"))
    assert set(GROUP("loss")) <= set(LOSSES)  # every loss config names a registered loss
    assert set(GROUP("augment")) == {"none", "diffaugment"}
    assert set(GROUP("trainer")) >= {"cpu", "gpu", "ddp"}
    assert set(GROUP("logger")) >= {"tensorboard", "csv"}
    assert set(GROUP("data")) >= {"mnist5k", "digits", "ring", "grid", "cifar10", "stl10", "mnist",
                                  "fashion_mnist", "celeba", "image_folder"}


@pytest.mark.parametrize("data,arch", list(combos()))
def test_every_data_and_architecture_composes(cfg_factory, data, arch):
    overrides = [f"data={data}", f"generator={arch}", f"discriminator={arch}"]
    if data == "image_folder":
        overrides.append("data.root=/some/folder")
    cfg = cfg_factory(*overrides)
    assert cfg.trainer.max_steps == cfg.steps  # Lightning counts generator steps
    assert cfg.data.batch_size == cfg.batch_size and cfg.data.batches_per_step == cfg.n_dis


@pytest.mark.parametrize("setting", [["data=ring", "generator=mlp", "discriminator=mlp"],
                                     ["data=mnist5k", "generator=dcgan", "discriminator=dcgan"],
                                     ["data=cifar10", "generator=resnet", "discriminator=resnet"]])
def test_every_norm_and_loss_composes(cfg_factory, setting):
    for norm, loss in itertools.product(GROUP("norm"), GROUP("loss")):
        cfg = cfg_factory(*setting, f"norm={norm}", f"loss={loss}")
        assert cfg.loss.name == loss
        hook = instantiate(cfg.norm)
        assert isinstance(hook, NormHook) and hook.penalty == GANSettings.from_config(cfg).penalty.name
        assert isinstance(instantiate(cfg.loss), AdversarialLoss)


@pytest.mark.parametrize("norm,facets", [
    ("none", ("none", "none", "none")), ("sn", ("sn", "none", "none")),
    ("bsn", ("bsn", "none", "none")), ("msn", ("msn", "none", "none")),
    ("osn", ("osn", "none", "none")), ("gp", ("none", "none", "wgan_gp")),
    ("gp_weak", ("none", "none", "wgan_gp")),
    ("bn", ("none", "batch", "none"))])
def test_presets_set_the_facets(cfg_factory, norm, facets):
    cfg = cfg_factory(f"norm={norm}")
    assert (cfg.norm.weight, cfg.norm.feature, cfg.norm.penalty) == facets


def test_facets_combine_from_the_command_line(cfg_factory):
    cfg = cfg_factory("norm=sn", "norm.penalty=r1", "norm.penalty_weight=5")
    hook = instantiate(cfg.norm)
    assert (hook.weight, hook.penalty, hook.penalty_weight) == ("sn", "r1", 5)
    cfg = cfg_factory("norm=bsn", "norm.scale=2.0", "norm.apply_to=[conv*]")
    hook = instantiate(cfg.norm)
    assert hook.options["scale"] == 2.0 and hook.apply_to == ["conv*"]


@pytest.mark.parametrize("data,arch", [("mnist5k", "dcgan"), ("mnist5k", "resnet"), ("ring", "mlp"),
                                       ("cifar10", "dcgan"), ("stl10", "resnet"), ("celeba", "dcgan")])
def test_models_instantiate_for_the_data_shape(cfg_factory, data, arch):
    cfg = cfg_factory(f"data={data}", f"generator={arch}", f"discriminator={arch}",
                      f"generator.{'hidden' if arch == 'mlp' else 'ch'}=8",
                      f"discriminator.{'hidden' if arch == 'mlp' else 'ch'}=8")
    dm = instantiate(cfg.data)  # constructing a DataModule touches no files
    g = instantiate(cfg.generator, shape=dm.shape)
    d = instantiate(cfg.discriminator, shape=dm.shape, norm=instantiate(cfg.norm))
    import torch
    assert d(g(torch.randn(2, g.z_dim))).shape == (2,)


@pytest.mark.parametrize("name", GROUP("experiment"))
def test_every_experiment_composes(cfg_factory, name):
    cfg = cfg_factory(f"experiment={name}")
    assert cfg.steps > 0


def test_experiment_overrides_the_root_config(cfg_factory):
    cfg = cfg_factory("experiment=ring_sn")
    assert cfg.steps == 2000 and cfg.ema.decay == 0.0 and cfg.data.std == 0.01
    cfg = cfg_factory("experiment=mnist5k_sn")
    assert cfg.generator.ch == 48 and cfg.discriminator.ch == 32 and cfg.norm.weight == "sn" and cfg.loss.name == "hinge"


def test_default_ema_forgets_its_starting_copy(cfg_factory):
    # issue #12: with decay 0.999 from step 1000 of 1600 the step-1000 copy was 55% of the
    # final EMA, and the samples inherited its class imbalance
    cfg = cfg_factory("experiment=mnist5k_sn")
    assert cfg.ema.decay ** (cfg.steps - cfg.ema.start) < 0.1


def test_command_line_beats_experiment(cfg_factory):
    cfg = cfg_factory("experiment=mnist5k_sn", "steps=7", "norm=bn")
    assert cfg.steps == 7 and cfg.norm.feature == "batch"


def test_the_bare_command_trains_what_make_run_trains(cfg_factory):
    """issue 35: `spectral-gan-train` with no overrides is `make run` (the Makefile's recipe read
    here, so that a change to either shows), which is the default experiment."""
    import re

    recipe = re.search(r"^run:.*\n\t(.*)$", (REPO / "Makefile").read_text(), re.M).group(1)
    words = recipe.split()
    assert words[0].endswith("spectral-gan-train"), recipe
    make_run = [w for w in words[1:] if w != "$(ARGS)"]

    def tree(*overrides):
        cfg = cfg_factory(*overrides, fast=False)
        return {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"}

    assert tree() == tree(*make_run) == tree("experiment=mnist5k_sn")
    assert tree() != tree("~experiment")  # the comparison can tell presets apart


def test_optimizer_defaults_are_the_sn_paper_setting(cfg_factory):
    cfg = cfg_factory("~experiment")
    opt = instantiate(cfg.optimizer.d)
    import torch
    adam = opt([torch.nn.Parameter(torch.zeros(1))])
    assert adam.defaults["lr"] == 2e-4 and tuple(adam.defaults["betas"]) == (0.5, 0.999)


@pytest.mark.parametrize("launcher,key,value", [("slurm", "max_num_timeout", 5), ("local", "n_jobs", 2)])
def test_launcher_configs_compose(cfg_factory, launcher, key, value):
    cfg = cfg_factory(f"hydra/launcher={launcher}")
    assert cfg.hydra.launcher[key] == value


def test_optuna_search_composes(cfg_factory):
    cfg = cfg_factory("hparams_search=ring_optuna", "experiment=ring_sn")
    assert cfg.optimized_metric == "metrics/best_reverse_kl"
    assert "OptunaSweeper" in cfg.hydra.sweeper._target_ and "norm" in cfg.hydra.sweeper.params


@pytest.mark.parametrize("setting, lr, betas, n_dis", [
    ("A", 1e-4, (0.5, 0.9), 5), ("B", 1e-4, (0.5, 0.999), 1), ("C", 2e-4, (0.5, 0.999), 1),
    ("D", 1e-3, (0.5, 0.9), 5), ("E", 1e-3, (0.5, 0.999), 5), ("F", 1e-3, (0.9, 0.999), 5)])
def test_sn_paper_settings_override_an_experiments_optimizer(cfg_factory, setting, lr, betas, n_dis):
    """SN paper Table 1; sn_setting comes after the experiment, so it wins over its optimizer."""
    cfg = cfg_factory("experiment=mnist5k_sn", f"sn_setting={setting}")
    for net in ("g", "d"):
        assert cfg.optimizer[net].lr == lr and tuple(cfg.optimizer[net].betas) == betas
    assert cfg.n_dis == n_dis and cfg.data.batches_per_step == n_dis


def test_sn_settings_study_sweeps_settings_norms_and_seeds(cfg_factory):
    cfg = cfg_factory("experiment=mnist5k_sn_settings")
    params = cfg.hydra.sweeper.params
    assert params.sn_setting == "A,B,C,D,E,F" and params.seed == "0,1"
    # the seven normalizations the study compares (the SN paper's six methods and BN); a new
    # preset is not automatically part of a published study
    assert set(params.norm.split(",")) == {"none", "sn", "bsn", "msn", "osn", "gp", "bn"}
    assert cfg.threads == 1 and cfg.hydra.launcher.n_jobs == 2
    assert cfg.optimizer.d.lr == 2e-4 and cfg.n_dis == 1  # no sn_setting: setting C
    # the size the published table was measured at: MLPs, 2,000 generator steps, no EMA
    assert cfg.generator._target_.endswith("MLPGenerator") and cfg.generator.hidden == 256
    assert cfg.discriminator._target_.endswith("MLPDiscriminator") and cfg.steps == 2000
    assert cfg.ema.decay == 0


def test_threads_must_be_a_positive_integer(cfg_factory):
    from spectral_gan.errors import ConfigError
    from spectral_gan.training.run import train

    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        train(cfg_factory("data=ring", "generator=mlp", "discriminator=mlp", "threads=0", "steps=1"))


def test_the_default_trains_in_bf16_only_on_a_cpu_that_has_it(cfg_factory, tmp_path, monkeypatch):
    """issue 35, item 8: the default experiment takes the precision this CPU runs fastest."""
    from spectral_gan.config import resolvers

    with_bf16, without = tmp_path / "bf16", tmp_path / "plain"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert resolvers.cpu_has_native_bf16(str(with_bf16)) and not resolvers.cpu_has_native_bf16(str(without))
    assert not resolvers.cpu_has_native_bf16(str(tmp_path / "absent"))
    monkeypatch.setattr(resolvers, "cpu_has_native_bf16", lambda: True)
    assert resolvers.fastest_precision("cpu") == "bf16-mixed"
    assert resolvers.fastest_precision("gpu") == "32-true"
    assert cfg_factory(fast=False).trainer.precision == "bf16-mixed"
    assert cfg_factory("trainer.precision=32-true", fast=False).trainer.precision == "32-true"
    assert cfg_factory("experiment=ring_sn", fast=False).trainer.precision == "32-true"  # others: as before
    monkeypatch.setattr(resolvers, "cpu_has_native_bf16", lambda: False)
    assert cfg_factory(fast=False).trainer.precision == "32-true"
