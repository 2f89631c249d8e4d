"""Intra-class FID of a class-conditional generator: the FID of each class's generated samples
against that class's real images, averaged over the classes (Miyato & Koyama 2018, "cGANs with
Projection Discriminator", Section 5).

The plain FID compares the marginals, so a generator that draws a perfect digit of the wrong
class scores as well as one that draws the requested class; the intra-class FID does not.

State: one torchmetrics ``FrechetInceptionDistance`` per class (its running feature sums, outer
products and counts, never the images). The features arrive precomputed: the caller runs its
extractor once per batch, for all classes together, and each class's FID receives its rows.
Memory: 2 x ``num_classes`` float64 ``d x d`` matrices (d = 128 for the digit classifier:
2.6 MB for 10 classes; d = 2048 for Inception: 670 MB for 10 classes).
"""
from __future__ import annotations

import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance


class _Precomputed(nn.Module):
    """The identity on feature vectors, as the ``feature=`` module of a FrechetInceptionDistance
    (torchmetrics' ``update(imgs, real)`` calls ``feature(imgs)``, then adds the rows to its sums
    and ``imgs.shape[0]`` to its count; checked against torchmetrics 1.9)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features  # read by FrechetInceptionDistance for its state size

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class IntraClassFID(nn.Module):
    """``add_real``/``add_fake`` feature vectors with their class labels; ``compute()`` is the
    mean over classes of the per-class FIDs (``per_class()``). The real side survives
    ``reset_fake``, as in ``MetricSuite``."""

    def __init__(self, num_classes: int, num_features: int) -> None:
        super().__init__()
        self.num_classes, self.num_features = num_classes, num_features
        self.fids = nn.ModuleList(
            FrechetInceptionDistance(feature=_Precomputed(num_features), reset_real_features=False)
            for _ in range(num_classes))
        self._warned = False

    @property
    def n_real(self) -> list[int]:
        """Real samples seen, per class."""
        return [int(fid.real_features_num_samples) for fid in self.fids]

    @property
    def n_fake(self) -> list[int]:
        """Generated samples seen, per class."""
        return [int(fid.fake_features_num_samples) for fid in self.fids]

    def _add(self, features: torch.Tensor, labels: torch.Tensor, real: bool) -> None:
        if len(features) != len(labels):
            raise ValueError(f"{len(features)} feature vectors but {len(labels)} labels")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1}, got "
                             f"{int(labels.min())}..{int(labels.max())}")
        for c in labels.unique().tolist():
            self.fids[c].update(features[labels == c], real=real)

    def add_real(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self._add(features, labels, real=True)

    def add_fake(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self._add(features, labels, real=False)

    def reset_fake(self) -> None:
        """Forget generated samples, keep the per-class reference statistics."""
        for fid in self.fids:
            fid.reset()  # reset_real_features=False keeps the real side

    def per_class(self) -> list[float]:
        """The FID of each class. Warns once per instance when a class has no more samples on
        either side than the feature dimension: its covariance estimate is then rank-deficient
        and the FID biased upwards (still computable, and comparable between generators at the
        same sample counts)."""
        counts = [min(r, f) for r, f in zip(self.n_real, self.n_fake)]
        if min(counts) < 2:
            short = [c for c, n in enumerate(counts) if n < 2]
            raise ValueError(f"intra-class FID needs at least 2 real and 2 generated samples per "
                             f"class; class(es) {short} have fewer")
        if min(counts) <= self.num_features and not self._warned:
            warnings.warn(
                f"intra-class FID from as few as {min(counts)} samples per class (real: "
                f"{min(self.n_real)}..{max(self.n_real)}, generated: {min(self.n_fake)}.."
                f"{max(self.n_fake)}): with {self.num_features}-d features each class's covariance "
                f"needs more than {self.num_features} samples per side to be full rank, so these "
                f"FIDs are biased; raise eval.num_samples (per class it is divided by "
                f"{self.num_classes})")
            self._warned = True
        return [float(fid.compute()) for fid in self.fids]

    def compute(self) -> float:
        """The intra-class FID: the mean of the per-class FIDs."""
        values = self.per_class()
        return sum(values) / len(values)
