"""A checkpoint's stored config cannot make spectral-gan-sample / -eval run arbitrary code."""
from __future__ import annotations

import sys

import copy

import pytest
import torch

from spectral_gan.checkpoints.load import load_generator
from spectral_gan.checkpoints.trust import UntrustedCheckpoint, checked_parts
from spectral_gan.training.run import train
from tests.test_cli_tools import run


@pytest.fixture(scope="module")
def ring_ckpt(tmp_path_factory):
    from hydra.core.global_hydra import GlobalHydra

    from tests.conftest import FAST
    from spectral_gan.cli.train import compose_train_config

    run_dir = tmp_path_factory.mktemp("ring")
    train(compose_train_config(FAST + ["data=ring", "generator=mlp", "discriminator=mlp",
                                       "batch_size=16", "steps=2"], str(run_dir)))
    GlobalHydra.instance().clear()
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def hostile(ckpt, tmp_path, edit) -> str:
    """A copy of ``ckpt`` whose stored config ``edit`` changed; loads with weights_only=True."""
    bad = copy.deepcopy(ckpt)
    edit(bad["spectral_gan_config"])
    path = tmp_path / "hostile.ckpt"
    torch.save(bad, path)
    assert torch.load(path, weights_only=True)["spectral_gan_config"] == bad["spectral_gan_config"]
    return str(path)


def write_text_target(victim):
    def edit(config):
        # Path.write_text(Path(victim), "pwned"): writes the file when instantiated unchecked
        config["data"] = {"_target_": "pathlib.Path.write_text",
                          "_args_": [{"_target_": "pathlib.Path", "_args_": [str(victim)]}, "pwned"]}
    return edit


@pytest.mark.parametrize("module", ["spectral_gan.cli.sample", "spectral_gan.cli.eval"])
def test_hostile_target_is_refused_and_nothing_runs(ring_ckpt, tmp_path, module):
    victim = tmp_path / "pwned.txt"
    path = hostile(ring_ckpt, tmp_path, write_text_target(victim))
    proc = run(module, f"ckpt_path={path}", f"out={tmp_path / 'out'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "refusing checkpoint" in proc.stderr and "pathlib.Path.write_text" in proc.stderr
    assert "trust_checkpoint=true" in proc.stderr and "Traceback" not in proc.stderr
    assert not victim.exists()


@pytest.mark.parametrize("edit,message", [
    # a re-exported name in an allowed package is not a class defined there
    (lambda c: c["data"].update(_target_="spectral_gan.data.base.DataLoader"), "not a data module"),
    (lambda c: c["data"].update(_target_="spectral_gan.data.batches.first_batches"), "not a data module"),
    (lambda c: c["data"].update(_target_="spectral_gan.data.base.torch.save"), "does not exist"),
    # a spectral_gan function outside data/models/norms
    (lambda c: c["data"].update(_target_="spectral_gan.sampling.write_samples"), "not a class of"),
    # nested targets and _args_ are checked too
    (lambda c: c["generator"].update(extra={"_target_": "os.system", "_args_": ["true"]}), "os.system"),
    (lambda c: c["generator"].update(_args_=[{"_target_": "builtins.exec"}]), "builtins.exec"),
    (lambda c: c["data"].update(_partial_=True), "_partial_"),
    # an interpolation that decodes into a target: checked after resolution
    (lambda c: c["data"].update(name="${oc.decode:'{_target_: os.system}'}"), "os.system"),
    (lambda c: c.update(g_norm="sn", norm={**c["norm"], "module": "os"}), "norm.module='os'"),
])
def test_every_route_to_code_is_checked(ring_ckpt, tmp_path, edit, message):
    path = hostile(ring_ckpt, tmp_path, edit)
    with pytest.raises(UntrustedCheckpoint, match=message):
        load_generator(path)


def test_escaped_interpolation_is_not_resolved_twice(ring_ckpt):
    config = copy.deepcopy(ring_ckpt["spectral_gan_config"])
    config["data"]["name"] = r"\${oc.env:HOME}"  # resolves to the text ${oc.env:HOME}
    with pytest.raises(UntrustedCheckpoint, match="interpolation after resolution"):
        checked_parts(config, "x.ckpt")


def test_the_hostile_checkpoint_does_write_when_trusted(ring_ckpt, tmp_path):
    """The test checkpoint above is a real attack: unchecked, it writes the file."""
    victim = tmp_path / "pwned.txt"
    with pytest.raises(Exception):
        load_generator(hostile(ring_ckpt, tmp_path, write_text_target(victim)), trust=True)
    assert victim.read_text() == "pwned"


def test_a_real_checkpoint_loads_and_trust_skips_the_check(ring_ckpt, tmp_path):
    path = hostile(ring_ckpt, tmp_path, lambda c: None)
    generator, datamodule, info = load_generator(path)
    assert type(datamodule).__name__ == "RingDataModule" and info["gen_step"] == 2
    # a user's norm module: refused by default, imported with trust
    user = hostile(ring_ckpt, tmp_path, lambda c: c.update(
        g_norm="sn", norm={**c["norm"], "module": "tests.toy_norm"}))
    with pytest.raises(UntrustedCheckpoint, match="tests.toy_norm"):
        load_generator(user)
    from spectral_gan.norms import WEIGHT_NORMS

    before = dict(WEIGHT_NORMS)
    try:
        with pytest.raises(Exception, match="do not fit"):  # got past the check: sn changes the keys
            load_generator(user, trust=True)
    finally:  # the import registered the toy norm: leave the registry as other tests expect it
        WEIGHT_NORMS.clear()
        WEIGHT_NORMS.update(before)
        sys.modules.pop("tests.toy_norm", None)
