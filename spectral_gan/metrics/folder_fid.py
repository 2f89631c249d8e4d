"""FID and KID of an image folder against a reference: another folder, saved statistics
(``.npz``), or a data set's images through the evaluator's cached reference statistics.

Both sides go through one ``MetricSuite`` (torchmetrics' FID with float64 running sums, KID on
the kept features; IS on the sample side where the extractor has logits), with the features of
one extractor: Inception (``extractors.inception_suite``) or a digit classifier
(``extractors.classifier_suite``), and precision, recall (k=3), density and coverage (k=5) from
the same features. ``.npz`` statistics use pytorch-fid's keys (mu, sigma) plus ``n`` and
``extractor`` when this package wrote them; they carry no features, so FID only.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Any, Iterable

import numpy as np
import torch
from tqdm import tqdm
from torchmetrics.image.fid import _compute_fid

from spectral_gan.errors import ConfigError
from spectral_gan.metrics.extractors import INCEPTION_EXTRACTOR as INCEPTION  # pytorch-fid's files too
from spectral_gan.metrics.images import FolderImages
from spectral_gan.metrics.prdc import NAMES as PRDC_NAMES
from spectral_gan.metrics.suite import MetricSuite


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    value = _compute_fid(torch.as_tensor(mu1, dtype=torch.float64), torch.as_tensor(sigma1, dtype=torch.float64),
                         torch.as_tensor(mu2, dtype=torch.float64), torch.as_tensor(sigma2, dtype=torch.float64))
    return max(float(value), 0.0)  # eigenvalue round-off gives -1e-4 for identical sets


def read_npz(path: str) -> dict[str, Any]:
    """mu, sigma, n (-1: not saved) and extractor (pytorch-fid's files: Inception) of a file."""
    with np.load(path) as f:
        return {"mu": f["mu"], "sigma": f["sigma"], "n": int(f["n"]) if "n" in f else -1,
                "extractor": str(f["extractor"]) if "extractor" in f else INCEPTION}


def save_npz(path: str, stats: dict[str, Any]) -> None:
    np.savez(path, mu=stats["mu"], sigma=stats["sigma"], n=stats["n"], extractor=stats["extractor"])


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
    """Fail on any missing or empty folder, or missing or unreadable ``.npz``, before a feature
    extractor is loaded or either side is scored (minutes, on a large folder)."""
    for path in paths:
        if path is None:
            continue
        if path.endswith(".npz"):
            check_npz(path)
        else:
            FolderImages(path)


def check_extractor(stats: dict[str, Any], path: str, extractor: str, num_features: int) -> None:
    """Statistics of other features than the extractor's cannot be compared with its own."""
    if stats["extractor"] != extractor or stats["mu"].shape != (num_features,):
        raise ConfigError(f"statistics file {path} holds {stats['mu'].shape[0]}-d features of "
                          f"{stats['extractor']}, not the {num_features}-d features of {extractor}; "
                          f"write it again with --save-stats and the same extractor")


class Scorer:
    """One comparison: ``add_folder``/``set_reference_statistics`` fill the reference (real)
    side, ``add_folder(..., sample=True)`` the sample side; ``compute()`` gives FID, KID (when
    both sides kept features) and IS (when the extractor has logits). ``warnings`` collects
    what the caller should print (unreadable or resized images, too few images)."""

    def __init__(self, suite: MetricSuite, info: dict[str, Any], device: torch.device | str,
                 batch_size: int = 50, size: int = 299, channels: int = 3, progress: bool = False) -> None:
        self.suite, self.info = suite.to(device), info
        self.device, self.batch_size = device, batch_size
        self.size, self.channels, self.progress = size, channels, progress
        self.warnings: list[str] = []

    @property
    def extractor(self) -> str:
        return self.info["extractor"]

    def add_folder(self, folder: str, sample: bool = False, resize_note: str | None = None) -> int:
        """Stream every readable image of ``folder`` into one side; returns how many were read.
        ``resize_note``: a warning to give when images had to be resized (None: resizing is the
        protocol, as to Inception's 299x299)."""
        images = FolderImages(folder, self.batch_size, self.size, self.channels)
        add = self.suite.add_fake if sample else self.suite.add_real
        n = 0
        name = os.path.basename(os.path.normpath(folder)) or folder
        with tqdm(total=len(images.paths), desc=name, unit="img", file=sys.stderr,
                  disable=not self.progress, smoothing=0.1) as bar:
            for batch in images:
                add(batch.to(self.device))
                n += len(batch)
                bar.update(len(batch))
        if n == 0:
            raise ConfigError(f"none of the {len(images.paths)} images in {folder} could be read")
        if n < 2:
            raise ConfigError(f"{folder} has {n} readable image; FID needs at least 2")
        if images.unreadable:
            self.warnings.append(f"{len(images.unreadable)} unreadable image(s) in {folder} skipped, "
                                 f"e.g. {images.unreadable[0]}")
        if images.other_sizes and resize_note:
            sizes = ", ".join(f"{w}x{h}" for w, h in sorted(images.other_sizes)[:3])
            self.warnings.append(f"images of {sizes} in {folder} resized to {self.size}x{self.size} "
                                 f"{resize_note}")
        self.check_rank(n, folder)
        return n

    def check_rank(self, n: int, where: str) -> None:
        """A warning when ``n`` images cannot give a full-rank covariance of the features."""
        dim = self.suite.num_features
        if n <= dim:
            self.warnings.append(f"{n} images in {where}: with {dim}-d features the covariance is not "
                                 f"full rank below {dim + 1} images, so this FID is biased; use more images")

    def set_reference_statistics(self, stats: dict[str, Any]) -> None:
        """The reference side from saved mean and covariance (no features: FID only)."""
        self.suite.keep_moments_only()
        n = stats["n"] if stats["n"] >= 2 else 2  # any n >= 2 gives back the same covariance
        mu = torch.as_tensor(stats["mu"], dtype=torch.float64)
        sigma = torch.as_tensor(stats["sigma"], dtype=torch.float64)
        self.suite.load_real_state({"sum": mu * n, "cov_sum": sigma * (n - 1) + n * torch.outer(mu, mu),
                                    "n": torch.tensor(n)})
        if stats["n"] > 0:
            self.check_rank(stats["n"], "the reference statistics")

    def statistics(self, sample: bool = False) -> dict[str, Any]:
        """mu, sigma (float64), n and extractor of one side, as ``--save-stats`` writes them."""
        fid = self.suite.fid
        total, outer, n = ((fid.fake_features_sum, fid.fake_features_cov_sum, fid.fake_features_num_samples)
                           if sample else
                           (fid.real_features_sum, fid.real_features_cov_sum, fid.real_features_num_samples))
        n = int(n)
        mu = (total / n).double().cpu()
        sigma = ((outer.double().cpu() - n * torch.outer(mu, mu)) / (n - 1))
        return {"mu": mu.numpy(), "sigma": sigma.numpy(), "n": n, "extractor": self.extractor}

    def compute(self, seed: int = 0) -> dict[str, float]:
        """fid, kid and kid_std (over 100 random subsets, seeded), is and is_std where they apply."""
        kid = self.suite.kid
        if kid is not None:
            n = min(self.suite.n_real, self.suite.n_fake)
            # Subsets of 1,000 (Binkowski et al.); with fewer images, halves, so that the spread
            # over subsets means something (subsets of all n would all be the same set).
            kid.subset_size = min(kid.subset_size, max(n // 2, 2))
            self.info["kid_subset_size"] = kid.subset_size
        torch.manual_seed(seed)  # KID draws its subsets with torch's global generator
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the rank warning is in self.warnings
            values = self.suite.compute()
        suffix = self.suite.suffix
        out = {(k[: -len(suffix)] if suffix and k.endswith(suffix) else k): v for k, v in values.items()}
        out["fid"] = max(out["fid"], 0.0)
        return out


def result_lines(metrics: dict[str, float], facts: Iterable[tuple[str, str]]) -> list[str]:
    """The printed result: FID, KID and IS (mean ± std), precision, recall, density and coverage
    when present, then ``facts``."""
    lines = [f"FID: {metrics['fid']:.4f}"]
    if "kid" in metrics:
        lines.append(f"KID: {metrics['kid']:.6f} ± {metrics['kid_std']:.6f}")
    if "is" in metrics:
        lines.append(f"IS: {metrics['is']:.4f} ± {metrics['is_std']:.4f}")
    lines += [f"{name}: {metrics[name]:.4f}" for name in PRDC_NAMES if name in metrics]
    lines += [f"{key}: {value}" for key, value in facts]
    return lines
