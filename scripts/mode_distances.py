"""Where a 2-D generator's low-quality samples are: near a mode or between modes.

    python scripts/mode_distances.py RUN_DIR_OR_CKPT [...] [--weights ema|raw] [--batch-stats N]
                                     [--json OUT]

For each checkpoint (a run directory means its checkpoints/last.ckpt), 2,500 samples (PacGAN's
protocol; noise seeded 0) are split by their distance to the nearest mode, in the mixture's
standard deviations: high quality (under 3, the PacGAN metric), near misses (3 to 6) and between
modes (6 or more: the bridges a continuous map from a connected latent space draws between the
modes it has separated). A high-quality share that is low because of bridges is a different
problem from one that is low because the modes are too wide.

``--batch-stats N``: draw the samples as training does, the generator in train mode in batches of
N (100: the 2-D presets' batch), so a batch-normed generator normalizes each batch by its own
statistics, as in the samples D judges; the default draws in eval mode (running statistics), as
evaluation and sampling do. For a generator without batch norm the two are the same samples.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from spectral_gan.checkpoints.load import load_generator  # noqa: E402
from spectral_gan.metrics.toy import nearest_modes  # noqa: E402

EDGES = (3.0, 6.0)  # std: high quality below the first, between modes from the second


@torch.no_grad()
def distances(ckpt: str, weights: str = "auto", n: int = 2500, seed: int = 0,
              batch_stats: int = 0) -> dict:
    G, data, _ = load_generator(ckpt, weights=weights)
    if getattr(data, "kind", "image") != "points":
        raise SystemExit(f"{ckpt}: not a 2-D mixture run (data={data.dataset_name})")
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=gen)
    if batch_stats:
        # train mode: BatchNorm uses each batch's statistics (and updates running ones on this
        # throwaway copy only); under no_grad nothing else changes
        G.train()
        x = torch.cat([G(chunk) for chunk in z.split(batch_stats)])
    else:
        x = G(z)
    dist = nearest_modes(x, data.modes).values
    low, high = (edge * data.std for edge in EDGES)  # as mode_metrics compares: dist < 3 std
    return {"checkpoint": ckpt, "n": n, "batch_stats": batch_stats,
            "high_quality": float((dist < low).float().mean()),
            "near_miss": float(((dist >= low) & (dist < high)).float().mean()),
            "between_modes": float((dist >= high).float().mean()),
            "median_std": float(dist.median() / data.std)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories or .ckpt files")
    parser.add_argument("--weights", default="auto", choices=("auto", "ema", "raw"))
    parser.add_argument("--batch-stats", type=int, default=0, metavar="N",
                        help="draw in train mode in batches of N, as training does (0: eval mode)")
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args()
    if args.batch_stats < 0:
        parser.error("--batch-stats must be a batch size >= 1, or 0 for eval mode")
    rows = []
    for run in args.runs:
        ckpt = run if run.endswith(".ckpt") else os.path.join(run, "checkpoints", "last.ckpt")
        rows.append(distances(ckpt, args.weights, batch_stats=args.batch_stats))
        r = rows[-1]
        print(f"{run}: high quality {r['high_quality']:.1%}, near miss (3-6 std) "
              f"{r['near_miss']:.1%}, between modes (>= 6 std) {r['between_modes']:.1%}, "
              f"median {r['median_std']:.2f} std")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
