"""Is a trained digit generator any good? Numbers from the project's own digit classifier.

Used by ``scripts/check_default.py`` (``make check-default``) and the slow test of the default
experiment. For a checkpoint of a generator trained on ``mnist5k``: classifier IS and FID of
``n`` samples (EMA weights where the run has them) against the training images, the fraction of
samples the classifier assigns to each digit, and the health check of ``spectral_gan.training.health``.

Criteria for "recognizable digits of all ten classes" (issue #12), checked by ``verdict``:
- class balance: every digit between 4% and 16% of the predictions (10% each when balanced);
- classifier FID at most 3x the median over the seeds of the same experiment;
- target, reported but not required: classifier IS at least 0.7x that of real held-out digits
  (the 1,000 images the classifier never saw in training).
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from spectral_gan.training import health
from spectral_gan.checkpoints.load import load_generator
from spectral_gan.evaluation import Evaluator
from spectral_gan.metrics.classifier import class_fractions, heldout_split, load_classifier

DATASET = "mnist5k"
CLASS_MIN, CLASS_MAX = 0.04, 0.16
FID_FACTOR = 3.0
IS_TARGET = 0.7
NOISE_SEED = 2024  # fixed evaluation noise, the same for every checkpoint


@dataclass
class DigitQuality:
    checkpoint: str
    gen_step: int
    weights: str
    n: int
    is_classifier: float
    fid_classifier: float
    class_fractions: list[float]
    diversity_ratio: float
    collapsed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def collapse_reasons(self) -> list[str]:
        return health.assess(self.diversity_ratio, scores={"metrics/is_classifier": self.is_classifier})


@torch.no_grad()
def evaluate_digits(ckpt_path: str, n: int = 2000, batch_size: int = 250,
                    weights: str = "auto") -> DigitQuality:
    """Classifier IS/FID, class fractions and health of ``n`` samples of a checkpoint
    (``weights``: auto, ema or raw, as ``checkpoint.load_generator``)."""
    generator, datamodule, info = load_generator(ckpt_path, weights)
    if datamodule.dataset_name != DATASET:
        raise ValueError(f"{ckpt_path} was trained on {datamodule.dataset_name}; the digit "
                         f"quality check needs data={DATASET}")
    noise = torch.Generator().manual_seed(NOISE_SEED)
    samples = torch.cat([generator(torch.randn(min(batch_size, n - i), generator.z_dim, generator=noise))
                         for i in range(0, n, batch_size)])
    # Classifier metrics only, reference statistics not cached: the check scores one checkpoint.
    evaluator = Evaluator.from_config(datamodule, {"num_samples": n, "batch_size": batch_size,
                                                   "classifier": True, "cache_dir": None})
    batches = iter(samples.split(batch_size))
    metrics = evaluator.evaluate(lambda _: next(batches), torch.device("cpu"))
    fractions = class_fractions(load_classifier(DATASET), samples)
    quality = DigitQuality(
        checkpoint=info["checkpoint"], gen_step=info["gen_step"], weights=info["generator_weights"],
        n=n, is_classifier=metrics["metrics/is_classifier"],
        fid_classifier=metrics["metrics/fid_classifier"],
        class_fractions=[round(float(f), 4) for f in fractions],
        diversity_ratio=health.diversity(samples) / health.diversity(datamodule.images[:n]))
    quality.collapsed = quality.collapse_reasons()
    return quality


@torch.no_grad()
def real_heldout_is() -> float:
    """Classifier IS of the 1,000 mnist5k digits held out from the classifier's training."""
    from spectral_gan.data.embedded import MNIST5kDataModule
    from spectral_gan.metrics.extractors import classifier_suite

    images = MNIST5kDataModule().load()
    held_out, _ = heldout_split(len(images))
    suite, _ = classifier_suite(DATASET)
    suite.add_fake(images[held_out])
    return float(suite.inception_score_value()[0])


def verdict(q: DigitQuality, median_fid: float, real_is: float) -> dict[str, Any]:
    """Which criteria a run meets (``passed``: the required ones, class balance and FID)."""
    balanced = all(CLASS_MIN <= f <= CLASS_MAX for f in q.class_fractions)
    fid_ok = q.fid_classifier <= FID_FACTOR * median_fid
    return {"balanced": balanced, "fid_ok": fid_ok, "is_target": q.is_classifier >= IS_TARGET * real_is,
            "is_ratio": q.is_classifier / real_is,
            "passed": balanced and fid_ok and not q.collapse_reasons()}


def median_fid(results: list[DigitQuality]) -> float:
    return statistics.median(q.fid_classifier for q in results)
