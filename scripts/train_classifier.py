"""Train the digit classifier behind classifier-FID/IS and save its weights.

    python scripts/train_classifier.py --dataset mnist5k    # 4,000 train / 1,000 held out
    python scripts/train_classifier.py --dataset digits     # 1,437 train / 360 held out

Writes spectral_gan/metrics/weights/<dataset>_classifier.pt and prints the held-out accuracy
(quoted in docs/evaluation.md). Deterministic for a given --seed on the CPU.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from spectral_gan.data.embedded import mnist5k_arrays
from spectral_gan.data.transforms import to_size
from spectral_gan.metrics.classifier import DigitClassifier, weights_path


def load(dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    if dataset == "mnist5k":
        images, labels = mnist5k_arrays()
        x = torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1
        return to_size(x, 32, "pad"), torch.from_numpy(labels)
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(d.images).float().unsqueeze(1) / 8.0 - 1
    return to_size(x, 32, "resize"), torch.from_numpy(d.target.astype(np.int64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["mnist5k", "digits"], default="mnist5k")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    x, y = load(args.dataset)
    order = torch.randperm(len(x))
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for epoch in range(args.epochs):
        model.train()
        for idx in train[torch.randperm(len(train))].split(64):
            xb = x[idx]
            # small random shifts: generated digits are not centered exactly like MNIST's
            dx, dy = torch.randint(-2, 3, (2,)).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x[test]).argmax(1) == y[test]).float().mean().item()
        print(f"epoch {epoch + 1}: held-out accuracy {acc:.4f} ({n_test} images)")
    torch.save(model.state_dict(), weights_path(args.dataset))
    print(f"saved {weights_path(args.dataset)}; held-out accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
