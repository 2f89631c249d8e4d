"""Cached reference statistics: keyed by what defines the reference set, written atomically
under a unique temporary name, and a corrupt file is recomputed rather than fatal."""
from __future__ import annotations

import os

import pytest
import torch
from PIL import Image
from torch import nn

import spectral_gan.evaluation.evaluator as evaluation
from spectral_gan.data import ImageFolderDataModule
from spectral_gan.evaluation import Evaluator
from spectral_gan.metrics.suite import MetricSuite


def _stand_in_suite(kid: bool = False, kid_subset_size: int = 1000, extra=()):
    """A cheap, deterministic Inception stand-in (the same weights in every evaluator)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
    return (MetricSuite(net, 4, kid=kid, kid_subset_size=kid_subset_size, extra=extra),
            {"extractor": "stand-in", "weights": "seed0", "input": "3x16x16"})


@pytest.fixture(autouse=True)
def stand_in(monkeypatch):
    monkeypatch.setattr(evaluation, "inception_suite", _stand_in_suite)


def folder(path, shade: int, n: int = 6):
    path.mkdir()
    for i in range(n):
        Image.new("RGB", (16, 16), color=(shade, 10 * i, 0)).save(path / f"{i}.png")
    return path


def prepared(root, cache_dir, **eval_cfg) -> Evaluator:
    dm = ImageFolderDataModule(root=str(root), image_size=16, batch_size=2)
    ev = Evaluator.from_config(dm, {"num_samples": 6, "batch_size": 3, "inception": True,
                                    "cache_dir": str(cache_dir), **eval_cfg})
    ev.prepare_reference(torch.device("cpu"))
    return ev


def real_sum(ev: Evaluator) -> torch.Tensor:
    return ev.suites["inception"][0].fid.real_features_sum.clone()


def cache_files(cache_dir) -> list[str]:
    return sorted(os.listdir(cache_dir / "reference_stats"))


def test_a_second_folder_is_not_scored_against_the_first_folders_statistics(tmp_path):
    cache = tmp_path / "cache"
    a = prepared(folder(tmp_path / "a", 0), cache)
    b = prepared(folder(tmp_path / "b", 250), cache)
    b_alone = prepared(tmp_path / "b", tmp_path / "other_cache")
    assert not torch.allclose(real_sum(a), real_sum(b))
    torch.testing.assert_close(real_sum(b), real_sum(b_alone))
    assert len(cache_files(cache)) == 2
    # the same folder again is a cache hit with the same numbers
    again = prepared(tmp_path / "a", cache)
    assert again.protocol["inception"]["reference_cache"] == a.protocol["inception"]["reference_cache"]
    torch.testing.assert_close(real_sum(again), real_sum(a))
    # images replaced in place: another key (size and time of the files are in it)
    Image.new("RGB", (16, 16), color=(99, 99, 99)).save(tmp_path / "a" / "0.png")
    changed = prepared(tmp_path / "a", cache)
    assert not torch.allclose(real_sum(changed), real_sum(a)) and len(cache_files(cache)) == 3


def test_a_corrupt_or_foreign_cache_file_is_discarded_and_recomputed(tmp_path):
    cache = tmp_path / "cache"
    first = prepared(folder(tmp_path / "a", 0), cache)
    path = first.protocol["inception"]["reference_cache"]
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 half a file")
    with pytest.warns(UserWarning, match="reference statistics cache .* is discarded: it could not be read"):
        again = prepared(tmp_path / "a", cache)
    torch.testing.assert_close(real_sum(again), real_sum(first))
    # ... and rewritten whole: the next run loads it without a warning
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(real_sum(prepared(tmp_path / "a", cache)), real_sum(first))
    # another folder's file copied over this key is recognized by the identity inside it
    other = prepared(folder(tmp_path / "b", 250), cache)
    os.replace(other.protocol["inception"]["reference_cache"], path)
    with pytest.warns(UserWarning, match="statistics of other reference images"):
        torch.testing.assert_close(real_sum(prepared(tmp_path / "a", cache)), real_sum(first))


def test_a_cache_without_kid_features_is_recomputed_for_kid(tmp_path):
    cache = tmp_path / "cache"
    folder(tmp_path / "a", 0)
    no_kid = prepared(tmp_path / "a", cache)
    path = no_kid.protocol["inception"]["reference_cache"]
    ev = ImageFolderDataModule(root=str(tmp_path / "a"), image_size=16, batch_size=2)
    with_kid = Evaluator.from_config(ev, {"num_samples": 6, "batch_size": 3, "inception": True,
                                          "kid": True, "cache_dir": str(cache)})
    with pytest.warns(UserWarning, match="kid_features is missing"):
        with_kid.prepare_reference(torch.device("cpu"))
    assert len(with_kid.suites["inception"][0].kid.real_features) > 0 and os.path.exists(path)


def test_cache_writes_use_a_unique_temporary_file_and_leave_nothing_on_failure(tmp_path, monkeypatch):
    suite, _ = _stand_in_suite()
    suite.add_real(torch.rand(4, 3, 16, 16))
    path = str(tmp_path / "ref.pt")
    renamed = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renamed.append(src), real_replace(src, dst)))
    suite.save_real(path, "x")
    suite.save_real(path, "x")
    assert len(set(renamed)) == 2 and all(os.path.dirname(s) == str(tmp_path) for s in renamed)
    assert path + ".tmp" not in renamed  # concurrent sweep jobs never share one temporary name

    def crash(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        suite.save_real(path, "x")
    assert os.listdir(tmp_path) == ["ref.pt"]  # no temporary file left behind
    assert MetricSuite(suite.fid.inception, 4).load_real(path, "x")  # the previous file, whole
