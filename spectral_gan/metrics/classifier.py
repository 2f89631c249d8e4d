"""A small digit classifier for classifier-based FID and IS on ``mnist5k`` and ``digits``.

Inception features mean little on 32x32 grey digits; the usual practice for MNIST-like data is a
domain classifier (e.g. the "MNIST score" of Li et al. 2017, the classifier FID of the
VEEGAN/PacGAN line of work). Weights are trained by ``scripts/train_classifier.py`` and ship in
``spectral_gan/metrics/weights/``; their held-out accuracy is in docs/evaluation.md.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from spectral_gan.errors import ConfigError

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")
FEATURE_DIM = 128


class DigitClassifier(nn.Module):
    """Three conv blocks and two dense layers on 1x32x32 images in [-1, 1]."""

    num_features = FEATURE_DIM

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(64 * 4 * 4, FEATURE_DIM)
        self.out = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations (FID features)."""
        return F.relu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both from one pass (FID reads the features, IS the logits)."""
        features = self.features(x)
        return features, self.out(features)


def weights_path(dataset: str) -> str:
    return os.path.join(WEIGHTS_DIR, f"{dataset}_classifier.pt")


def load_classifier(dataset: str) -> DigitClassifier:
    path = weights_path(dataset)
    if not os.path.exists(path):
        raise ConfigError(
            f"no classifier weights for {dataset} at {path} (they ship with the package); "
            f"restore them (`git checkout -- {os.path.relpath(path)}`) or retrain them with "
            f"`python scripts/train_classifier.py --dataset {dataset}`, or set eval.classifier=false")
    model = DigitClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False)


def heldout_split(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out, training) indices of the classifier's 80/20 split (``scripts/train_classifier.py``):
    a ``randperm`` drawn right after ``torch.manual_seed(seed)``, its first fifth held out."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = n // 5
    return order[:n_test], order[n_test:]


@torch.no_grad()
def class_fractions(classifier: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Fraction of ``images`` the classifier assigns to each class (sums to 1)."""
    preds = torch.cat([classifier(batch).argmax(1) for batch in images.split(batch_size)])
    return torch.bincount(preds, minlength=classifier.out.out_features).float() / len(preds)
