"""FID between image folders (or saved statistics), with standard Inception features.

Statistics are accumulated in float64 over streamed batches; the Frechet distance is
torchmetrics' (Heusel et al. 2017). ``.npz`` statistics use pytorch-fid's keys (mu, sigma).
"""
from __future__ import annotations

import os
import sys

import numpy as np
import torch
from tqdm import tqdm
from torchmetrics.image.fid import _compute_fid

from spectral_gan.errors import ConfigError
from spectral_gan.metrics.images import FolderImages
from spectral_gan.metrics.inception import InceptionFeatures


def folder_statistics(folder: str, net: InceptionFeatures, batch_size: int, device: str,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    """Mean and covariance (float64) of the folder's Inception features, streamed
    (``progress``: a bar on stderr, with the time left)."""
    images = FolderImages(folder, batch_size)
    total, outer, n = None, None, 0
    bar = tqdm(total=len(images.paths), desc=os.path.basename(os.path.normpath(folder)) or folder,
               unit="img", file=sys.stderr, disable=not progress, smoothing=0.1)
    for batch in images:
        bar.update(len(batch))
        f = net(batch.to(device)).double().cpu()
        total = f.sum(0) if total is None else total + f.sum(0)
        outer = f.t() @ f if outer is None else outer + f.t() @ f
        n += len(f)
    bar.close()
    if n == 0:
        raise ConfigError(f"none of the {len(images.paths)} images in {folder} could be read")
    if n < 2:
        raise ConfigError(f"{folder} has {n} readable image; FID needs at least 2")
    mu = total / n
    sigma = (outer - n * torch.outer(mu, mu)) / (n - 1)
    return mu.numpy(), sigma.numpy(), n, images.unreadable


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    value = _compute_fid(torch.as_tensor(mu1, dtype=torch.float64), torch.as_tensor(sigma1, dtype=torch.float64),
                         torch.as_tensor(mu2, dtype=torch.float64), torch.as_tensor(sigma2, dtype=torch.float64))
    return float(value)


def statistics(path: str, net: InceptionFeatures, batch_size: int, device: str,
               progress: bool = False) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    """(mu, sigma, n, warnings) of an image folder or a saved ``.npz`` (n = -1 if not saved)."""
    if path.endswith(".npz"):
        with np.load(path) as f:
            return f["mu"], f["sigma"], int(f["n"]) if "n" in f else -1, []
    mu, sigma, n, unreadable = folder_statistics(path, net, batch_size, device, progress)
    warnings = []
    if unreadable:
        warnings.append(f"{len(unreadable)} unreadable image(s) in {path} skipped, e.g. {unreadable[0]}")
    dim = mu.shape[0]
    if n <= dim:
        warnings.append(f"{n} images in {path}: with {dim}-d features the covariance is not full "
                        f"rank below {dim + 1} images, so this FID is biased; use more images")
    return mu, sigma, n, warnings


def check_npz(path: str) -> None:
    """A statistics file must exist and hold ``mu`` and ``sigma`` (pytorch-fid's keys)."""
    if not os.path.isfile(path):
        raise ConfigError(f"statistics file {path} does not exist; write one with "
                          f"spectral-gan-fid FOLDER --save-stats {path}")
    try:
        with np.load(path) as f:
            missing = [k for k in ("mu", "sigma") if k not in f]
    except Exception as err:  # noqa: BLE001  not a zip, truncated, pickled objects ...
        raise ConfigError(f"statistics file {path} could not be read ({type(err).__name__}); "
                          f"write it again with --save-stats") from None
    if missing:
        raise ConfigError(f"statistics file {path} has no {' or '.join(missing)}; it needs "
                          f"pytorch-fid's keys mu and sigma (as --save-stats writes)")


def check_paths(*paths: str | None) -> None:
    """Fail on any missing or empty folder, or missing or unreadable ``.npz``, before the
    Inception network is loaded or either side is scored (minutes, on a large folder)."""
    for path in paths:
        if path is None:
            continue
        if path.endswith(".npz"):
            check_npz(path)
        else:
            FolderImages(path)
