"""FID feature-extraction throughput: images per second through the Inception extractor.

    python benchmarks/fid_throughput.py [--batch 50] [--repeats 5] [--device cpu]

Input: 32x32 RGB images in [-1, 1], resized to 299x299 as for FID (the resize is included).
Reports the median over repeats (after one warm-up batch) and the classifier extractor's rate
for comparison, measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from devtools.hardware import cpu_model  # noqa: E402
from spectral_gan.metrics.classifier import load_classifier  # noqa: E402
from spectral_gan.metrics.inception import InceptionFeatures  # noqa: E402


def rate(fn, images: torch.Tensor, repeats: int) -> float:
    fn(images)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(images)
        if images.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    net = InceptionFeatures().to(device)
    clf = load_classifier("mnist5k").to(device)
    rgb = torch.rand(args.batch, 3, 32, 32, device=device) * 2 - 1
    grey = torch.rand(args.batch, 1, 32, 32, device=device) * 2 - 1
    with torch.no_grad():
        result = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU {cpu_model()}",
            "cpu": cpu_model(), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "threads": torch.get_num_threads(),
            "batch": args.batch,
            "inception_images_per_s": round(rate(net, rgb, args.repeats), 1),
            "classifier_images_per_s": round(rate(clf.features, grey, args.repeats), 1),
            "inception_weights": net.origin,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
