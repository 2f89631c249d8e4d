"""spectral-gan-sample and spectral-gan-eval on tiny real checkpoints."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from spectral_gan.training.run import train


def run(module: str, *args: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, SPECTRAL_GAN_OUTPUTS=str(cwd / "outputs"), PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def digits_ckpt(cfg_factory, tmp_path):
    train(cfg_factory("data=digits", "batch_size=8", "generator.ch=8", "discriminator.ch=8",
                      "steps=3", "ema.start=1", run_dir=tmp_path / "run"))
    return tmp_path / "run" / "checkpoints" / "last.ckpt"


def test_sample_writes_pngs_and_npz_from_the_ema_generator(digits_ckpt, tmp_path):
    proc = run("spectral_gan.cli.sample", f"ckpt_path={digits_ckpt}", "n=7", f"out={tmp_path / 's'}",
               "npz=true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(ema weights)" in proc.stdout and "generator step 3" in proc.stdout
    pngs = sorted((tmp_path / "s").glob("*.png"))
    assert len(pngs) == 7 and Image.open(pngs[0]).size == (32, 32)
    arr = np.load(tmp_path / "s" / "samples.npz")["samples"]
    assert arr.shape == (7, 32, 32, 1) and arr.dtype == np.uint8
    # no Hydra run directory, .hydra/ or sample.log: only what was asked for (configs/hydra/no_run_dir.yaml)
    assert sorted(os.listdir(tmp_path)) == ["run", "s"]


def test_eval_writes_json_with_metrics_and_protocol(digits_ckpt, tmp_path):
    out = tmp_path / "eval.json"
    proc = run("spectral_gan.cli.eval", f"ckpt_path={digits_ckpt}", "eval.num_samples=150",
               "eval.inception=false", f"out={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["metrics"]) >= {"fid_classifier", "is_classifier", "kid_classifier"}
    proto = result["protocol"]
    assert proto["n_fake"] == 150 and proto["classifier"]["n_real"] == 150
    assert proto["reference_split"] == "train" and proto["dataset"] == "digits"
    assert result["gen_step"] == 3 and result["generator_weights"] == "ema"
    # the JSON and the reference cache, no Hydra run directory, .hydra/ or eval.log
    assert sorted(os.listdir(tmp_path)) == ["eval.json", "outputs", "run"]
    assert os.listdir(tmp_path / "outputs") == ["cache"]


def test_raw_or_ema_weights_on_request(digits_ckpt, tmp_path):
    from spectral_gan.checkpoints.load import load_generator
    from spectral_gan.errors import ConfigError

    ema, _, info_ema = load_generator(str(digits_ckpt))
    raw, _, info_raw = load_generator(str(digits_ckpt), "raw")
    assert (info_ema["generator_weights"], info_raw["generator_weights"]) == ("ema", "generator")
    assert any(not torch.equal(a, b) for a, b in zip(ema.state_dict().values(), raw.state_dict().values()))
    with pytest.raises(ConfigError, match="choose one of auto, ema, raw"):
        load_generator(str(digits_ckpt), "newest")
    proc = run("spectral_gan.cli.sample", f"ckpt_path={digits_ckpt}", "n=2", "weights=raw",
               f"out={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 0 and "(generator weights)" in proc.stdout, proc.stderr[-2000:]


def test_ema_weights_of_a_run_without_ema_are_refused(cfg_factory, tmp_path):
    from spectral_gan.checkpoints.load import load_generator
    from spectral_gan.errors import ConfigError

    train(cfg_factory("data=ring", "generator=mlp", "discriminator=mlp", "batch_size=16", "steps=2",
                      "ema.decay=0", run_dir=tmp_path / "run"))
    with pytest.raises(ConfigError, match="holds no EMA weights"):
        load_generator(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "ema")


def test_sample_of_2d_data_writes_points(cfg_factory, tmp_path):
    train(cfg_factory("data=ring", "generator=mlp", "discriminator=mlp", "batch_size=16", "steps=2",
                      run_dir=tmp_path / "run"))
    proc = run("spectral_gan.cli.sample", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}",
               "n=50", f"out={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.load(tmp_path / "s" / "samples.npz")["samples"].shape == (50, 2)
    assert (tmp_path / "s" / "scatter.png").exists()


@pytest.mark.parametrize("content,message", [(None, "does not exist"), ("junk", "could not be read")])
def test_bad_checkpoints_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "x.ckpt"
    if content is not None:
        path.write_text(content)
    proc = run("spectral_gan.cli.eval", f"ckpt_path={path}", cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
