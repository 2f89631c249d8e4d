"""spectral-gan-fid: FID, KID, precision/recall and density/coverage of an image folder against a
reference.

    spectral-gan-fid SAMPLES --ref data=cifar10          # a data config's images (cached statistics)
    spectral-gan-fid SAMPLES --ref data=mnist5k          # digit data: the digit classifier's features
    spectral-gan-fid SAMPLES --ref data=cifar10 eval.reference_split=test eval.num_samples=50000
    spectral-gan-fid SAMPLES --ref REAL_FOLDER           # another folder (also: SAMPLES REAL_FOLDER)
    spectral-gan-fid SAMPLES --ref stats.npz             # saved mean and covariance (FID only)
    spectral-gan-fid FOLDER --save-stats stats.npz       # write mu, sigma (pytorch-fid's format)

A data reference is composed as spectral-gan-train would compose it (`data=...` and any other
overrides; `eval.reference_split`, `eval.num_samples` and `eval.cache_dir` as spectral-gan-eval
reads them, defaults from configs/metrics/full.yaml: the first 10,000 training images), and its
statistics are read from, or written to, the reference cache that evaluation uses, so they are
computed once. Sample images are brought to the data's shape (channels, size) first, as
generated samples are in an evaluation.

Features (--extractor auto): the digit classifier for data=mnist5k and data=digits, Inception
(2015-12-05 graph, offline; see spectral_gan.metrics.inception) otherwise. KID needs features on
both sides, as do precision and recall (Kynkaanniemi et al. 2019, k=3) and density and coverage
(Naeem et al. 2020, k=5), so a .npz reference gives FID only. Prints FID, KID (mean ± std over
random subsets), IS where the extractor has logits, the four k-NN metrics, the extractor and the
reference; --json writes them all with the protocol (counts, weights, cache file).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from spectral_gan.errors import ConfigError

# torch, the extractors and Lightning are imported when scoring starts, not for --help.
if TYPE_CHECKING:
    import torch

    from spectral_gan.metrics.folder_fid import Scorer

EXTRACTORS = ("auto", "inception", "classifier")


def is_data_reference(ref: list[str] | None) -> bool:
    """``--ref data=cifar10 ...``: config overrides (``key=value``), not a path."""
    return bool(ref) and all("=" in token for token in ref)


def compose_reference(overrides: list[str]):
    """(data module, eval block) that ``overrides`` compose to, in spectral-gan-train's config
    with spectral-gan-eval's protocol (metrics/full.yaml) as the defaults; the data is checked
    to be there (DatasetNotFoundError: which files to place where)."""
    from hydra.errors import HydraException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from spectral_gan.config import resolvers as config_resolvers
    from spectral_gan.cli.common import compose_config, config_error_in

    config_resolvers.register()
    try:
        cfg = compose_config("train", ["metrics@eval=full", *overrides])
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"--ref {' '.join(overrides)}: {err}") from None
    try:
        datamodule = instantiate(cfg.data)
    except Exception as err:  # noqa: BLE001  Hydra wraps what the data module raises
        cause = config_error_in(err)
        if cause is None:
            raise
        raise cause from None
    if datamodule.kind != "image":
        raise ConfigError(f"--ref {' '.join(overrides)}: data={datamodule.dataset_name} is "
                          f"{datamodule.kind}, not images; FID needs an image data set")
    datamodule.check_available()
    eval_cfg = OmegaConf.to_container(cfg.eval, resolve=True)
    eval_cfg.pop("every", None)
    return datamodule, eval_cfg


def pick_extractor(choice: str, dataset: str | None) -> str:
    """``auto``: the digit classifier for digit data (what evaluation logs during training),
    Inception for everything else."""
    from spectral_gan.metrics.extractors import CLASSIFIER_DATASETS

    if choice == "auto":
        return "classifier" if dataset in CLASSIFIER_DATASETS else "inception"
    if choice == "classifier" and dataset not in CLASSIFIER_DATASETS:
        where = f"data={dataset}" if dataset else "a folder or .npz reference"
        raise ConfigError(f"--extractor classifier needs --ref data=mnist5k or data=digits (the "
                          f"digit classifiers are trained on those), not {where}")
    return choice


def data_scorer(overrides: list[str], choice: str, device: torch.device, batch_size: int
                ) -> tuple[Scorer, dict[str, Any]]:
    """A scorer whose reference side is the data's images, loaded from or saved to the cache."""
    from spectral_gan.evaluation import Evaluator
    from spectral_gan.metrics.folder_fid import Scorer

    datamodule, eval_cfg = compose_reference(overrides)
    extractor = pick_extractor(choice, datamodule.dataset_name)
    eval_cfg.update(inception=extractor == "inception", classifier=extractor == "classifier", kid=True)
    evaluator = Evaluator.from_config(datamodule, eval_cfg)
    evaluator.progress = True
    evaluator.prepare_reference(device)
    suite, info = evaluator.suites[extractor]
    protocol = evaluator.protocol[extractor]
    channels, size = datamodule.shape[0], datamodule.shape[-1]
    scorer = Scorer(suite, dict(info), device, batch_size, size=size, channels=channels, progress=True)
    scorer.check_rank(protocol["n_real"], f"the reference ({' '.join(overrides)})")
    reference = {"kind": "data", "name": " ".join(overrides), "dataset": datamodule.dataset_name,
                 "split": evaluator.reference_split, "n": protocol["n_real"],
                 "cache": protocol.get("reference_cache"), "shape": list(datamodule.shape)}
    return scorer, reference


def describe(reference: dict[str, Any]) -> str:
    if reference["kind"] == "data":
        return (f"{reference['name']} ({reference['split']} split, {reference['n']} images"
                f"{', cached in ' + reference['cache'] if reference['cache'] else ''})")
    n = f", {reference['n']} images" if reference.get("n", -1) > 0 else ""
    return f"{reference['path']} ({reference['kind']}{n})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spectral-gan-fid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", help="image folder to score (or .npz statistics, against a second path)")
    parser.add_argument("reference", nargs="?", help="image folder or .npz statistics (or use --ref)")
    parser.add_argument("--ref", nargs="+", metavar="REF",
                        help="the reference: data=NAME [more key=value overrides], a folder, or a .npz")
    parser.add_argument("--extractor", choices=EXTRACTORS, default="auto",
                        help="features: auto (classifier for digit data, else Inception), inception, classifier")
    parser.add_argument("--save-stats", metavar="OUT.npz", help="write the samples' statistics here")
    parser.add_argument("--json", metavar="OUT.json", help="also write the result and protocol as JSON")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="KID's random subsets")
    parser.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda, cuda:N")
    args = parser.parse_args(argv)
    if args.ref is not None and args.reference is not None:
        parser.error("give the reference once: as a second path or as --ref")
    if args.ref is not None and not is_data_reference(args.ref):
        if len(args.ref) != 1:
            parser.error("--ref takes one folder or .npz, or key=value overrides such as data=cifar10")
        args.reference = args.ref[0]
    if args.reference is None and args.ref is None and args.save_stats is None:
        parser.error("give a reference (--ref data=NAME, --ref FOLDER, --ref STATS.npz), or --save-stats OUT.npz")
    from spectral_gan.training.quiet import quiet_lightning

    quiet_lightning()  # torchmetrics' note that KID and IS keep features: they do, by design
    try:
        result = _run(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result is None:
        return 0
    for warning in result.pop("warnings"):
        print(f"warning: {warning}", file=sys.stderr)
    from spectral_gan.metrics.folder_fid import result_lines

    facts = [("extractor", result["extractor"]), ("reference", describe(result["reference"])),
             ("samples", f"{result['samples']['path']} ({result['samples']['n']} images)")]
    print("\n".join(result_lines(result["metrics"], facts)))
    if result.get("weights"):
        print(f"weights: {result['weights']}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _run(args) -> dict[str, Any] | None:
    from spectral_gan.cli.common import pick_device
    from spectral_gan.metrics.extractors import inception_suite
    from spectral_gan.metrics.folder_fid import (INCEPTION, Scorer, check_extractor, check_paths,
                                                 read_npz, save_npz)
    from spectral_gan.metrics.inception import InceptionFeatures
    from spectral_gan.metrics.prdc import NAMES as PRDC_NAMES

    device = pick_device(args.device)
    data_ref = is_data_reference(args.ref)
    samples_npz = args.samples.endswith(".npz")
    if data_ref and samples_npz:
        raise ConfigError(f"{args.samples}: score an image folder against --ref {' '.join(args.ref)}, "
                          f"not saved statistics")
    if samples_npz and args.save_stats:
        raise ConfigError("--save-stats writes the statistics of an image folder, not of a .npz")
    check_paths(args.samples, args.reference)  # fail on bad paths before any extractor loads
    if args.samples.endswith(".npz") and (args.reference or "").endswith(".npz"):
        return _two_statistics_files(args.samples, args.reference)
    # A .npz given first (`spectral-gan-fid ref.npz samples/`) is the reference.
    samples, reference = ((args.reference, args.samples) if samples_npz else (args.samples, args.reference))

    if data_ref:
        scorer, ref_info = data_scorer(args.ref, args.extractor, device, args.batch_size)
    else:
        pick_extractor(args.extractor, None)
        stats = None
        if reference is not None and reference.endswith(".npz"):  # checked before Inception loads
            stats = read_npz(reference)
            check_extractor(stats, reference, INCEPTION, InceptionFeatures.num_features)
        suite, info = inception_suite(kid=True, extra=PRDC_NAMES)
        scorer = Scorer(suite, info, device, args.batch_size, progress=True)
        ref_info = None
        if stats is not None:
            scorer.set_reference_statistics(stats)
            ref_info = {"kind": "statistics", "path": reference, "n": stats["n"]}
        elif reference is not None:
            ref_info = {"kind": "folder", "path": reference, "n": scorer.add_folder(reference)}

    note = (f"(the shape of data={ref_info['dataset']})" if data_ref else None)
    n_samples = scorer.add_folder(samples, sample=True, resize_note=note)
    if args.save_stats:
        save_npz(args.save_stats, scorer.statistics(sample=True))
        print(f"saved statistics of {n_samples} images to {args.save_stats}", file=sys.stderr)
    if ref_info is None:
        for warning in scorer.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return None
    metrics = scorer.compute(args.seed)
    return {"metrics": metrics, "extractor": scorer.extractor, "weights": scorer.info.get("weights"),
            "input": scorer.info.get("input"), "kid_subset_size": scorer.info.get("kid_subset_size"),
            "reference": ref_info, "samples": {"path": samples, "n": n_samples},
            "device": str(device), "seed": args.seed, "warnings": scorer.warnings}


def _two_statistics_files(a: str, b: str) -> dict[str, Any]:
    from spectral_gan.metrics.folder_fid import check_extractor, frechet_distance, read_npz

    sa, sb = read_npz(a), read_npz(b)
    check_extractor(sb, b, sa["extractor"], sa["mu"].shape[0])
    return {"metrics": {"fid": frechet_distance(sa["mu"], sa["sigma"], sb["mu"], sb["sigma"])},
            "extractor": sa["extractor"], "reference": {"kind": "statistics", "path": b, "n": sb["n"]},
            "samples": {"path": a, "n": sa["n"]}, "warnings": []}


if __name__ == "__main__":
    sys.exit(main())
