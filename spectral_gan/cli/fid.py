"""spectral-gan-fid: FID between two image folders, or a folder and a saved statistics file.

    spectral-gan-fid FOLDER_A FOLDER_B
    spectral-gan-fid FOLDER --save-stats stats.npz     # write mu, sigma (pytorch-fid's format)
    spectral-gan-fid FOLDER stats.npz

Standard Inception features of the 2015-12-05 graph, offline (see spectral_gan.metrics.inception);
images of any size are resized to 299x299 as torch-fidelity does, 299x299 images are used as is.
Prints the FID; the protocol (counts, extractor, weights) goes to stderr.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from spectral_gan.errors import ConfigError
from spectral_gan.metrics.folder_fid import check_paths, frechet_distance, statistics
from spectral_gan.metrics.inception import InceptionFeatures


def _statistics(path: str, net: InceptionFeatures, args) -> tuple[np.ndarray, np.ndarray, int]:
    mu, sigma, n, warnings = statistics(path, net, args.batch_size, args.device, progress=True)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return mu, sigma, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spectral-gan-fid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path_a", help="image folder (or .npz statistics)")
    parser.add_argument("path_b", nargs="?", help="image folder or .npz statistics")
    parser.add_argument("--save-stats", metavar="OUT.npz", help="write path_a's statistics here")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.path_b is None and args.save_stats is None:
        parser.error("give two paths to compare, or --save-stats OUT.npz")
    try:
        check_paths(args.path_a, args.path_b)  # fail on bad paths before loading Inception
        net = InceptionFeatures().to(args.device)
        mu_a, sigma_a, n_a = _statistics(args.path_a, net, args)
        if args.save_stats:
            np.savez(args.save_stats, mu=mu_a, sigma=sigma_a, n=n_a)
            print(f"saved statistics of {n_a} images to {args.save_stats}", file=sys.stderr)
        if args.path_b is None:
            return 0
        mu_b, sigma_b, n_b = _statistics(args.path_b, net, args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"protocol: {n_a} vs {n_b} images, Inception 2015-12-05 pool features, weights "
          f"{net.origin}", file=sys.stderr)
    # eigenvalue round-off can give -1e-4 for identical sets; a distance is never negative
    print(f"FID: {max(frechet_distance(mu_a, sigma_a, mu_b, sigma_b), 0.0):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
