"""Every metric the evaluator can log, with its direction: the one place that says whether a
larger value is better.

Read by the evaluator (which metric picks the best checkpoint, and which way), by the
LightningModule (``is_improvement``, ``worst_value``) and by ``spectral-gan-compare`` (which
metrics to tabulate, and whether "best" is a seed's maximum or minimum). A metric the evaluator
emits without an entry here fails ``tests/test_evaluation.py``.

Directions, with their sources:
- FID, lower is better: Frechet distance between feature Gaussians (Heusel et al. 2017, TTUR).
- KID, lower is better: squared MMD between feature sets (Binkowski et al. 2018, Demystifying
  MMD GANs).
- IS, higher is better: exp E KL(p(y|x) || p(y)) (Salimans et al. 2016, Section 4).
- precision, recall (Kynkäänniemi et al. 2019, Improved Precision and Recall, k=3), density,
  coverage (Naeem et al. 2020, Reliable Fidelity and Diversity Metrics, k=5): higher is better;
  k-nearest-neighbour manifolds of the features (``spectral_gan/metrics/prdc.py``).
- modes, high_quality: higher is better; reverse_kl: lower is better (PacGAN, Lin et al. 2018,
  Section 5 and Table 1; computed in ``spectral_gan/metrics/toy.py``).
- Class-conditional generators only (``Evaluator(num_classes=...)``): intra-class FID, lower is
  better (Miyato & Koyama 2018, cGANs with Projection Discriminator, Section 5;
  ``spectral_gan/metrics/intra_class.py``); class_accuracy, higher is better (the fraction of
  samples the digit classifier assigns to the class they were generated for; cf. the Inception
  accuracy of class-conditional samples in Odena et al. 2017, AC-GAN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class MetricSpec:
    name: str               # as ``evaluate`` returns it, without the ``metrics/`` prefix
    higher_is_better: bool
    description: str


# FID/KID/IS come from one MetricSuite per feature extractor; the suite appends the extractor's
# suffix (``spectral_gan/metrics/extractors.py``), so each base metric exists once per extractor.
_SUITE_METRICS = (
    ("fid", False, "Frechet distance between real and generated feature Gaussians"),
    ("is", True, "Inception Score: exp of the mean KL between p(y|x) and p(y)"),
    ("kid", False, "Kernel distance (unbiased MMD^2, cubic kernel) between feature sets"),
)
# Registered again, with the same text, as feature metrics by metrics/prdc.py (eval.prdc); listed
# here so that their directions and columns exist whatever has been imported; after the
# conditional ones in METRICS, so the older columns keep their order.
_PRDC_METRICS = (
    ("precision", True, "share of generated features inside the real features' k=3 NN balls"),
    ("recall", True, "share of real features inside the generated features' k=3 NN balls"),
    ("density", True, "mean number of real k=5 NN balls holding a generated feature, over k"),
    ("coverage", True, "share of real k=5 NN balls holding at least one generated feature"),
)
_EXTRACTORS = (("", "Inception-v3 pool features"),
               ("_classifier", "the digit classifier's penultimate features"))
_MODE_METRICS = (
    MetricSpec("modes", True, "mixture modes with at least one high-quality sample"),
    MetricSpec("high_quality", True, "fraction of samples within 3 std of their nearest mode"),
    MetricSpec("reverse_kl", False, "KL(p || uniform) of the high-quality samples over the modes"),
)
# Class-conditional generators: the per-class FID averaged over classes (once per extractor) and
# the digit classifier's accuracy on the requested classes. After the others, so the table's
# columns for unconditional runs keep their order.
_CONDITIONAL_METRICS = (
    *(MetricSpec("intra_fid" + suffix, False,
                 f"mean over classes of the FID between a class's generated and real samples "
                 f"({features})") for suffix, features in _EXTRACTORS),
    MetricSpec("class_accuracy", True,
               "fraction of generated samples the digit classifier assigns to their requested "
               "class"),
)

# Ordered as spectral-gan-compare lays out its columns and plots.
METRICS: dict[str, MetricSpec] = {
    spec.name: spec for spec in (
        *(MetricSpec(base + suffix, higher, f"{text} ({features})")
          for suffix, features in _EXTRACTORS for base, higher, text in _SUITE_METRICS),
        *_MODE_METRICS, *_CONDITIONAL_METRICS,
        *(MetricSpec(base + suffix, higher, f"{text} ({features})")
          for suffix, features in _EXTRACTORS for base, higher, text in _PRDC_METRICS))
}


def suite_metric(base: str) -> tuple[bool, str]:
    """(higher_is_better, description) of a built-in per-extractor metric, by its base name."""
    return next((higher, text) for name, higher, text in _SUITE_METRICS + _PRDC_METRICS
                if name == base)


def register_metric(name: str, higher_is_better: bool, description: str,
                    per_extractor: bool = False) -> None:
    """Add a metric's direction (a plugin's: ``metrics/feature_metrics.py``); ``per_extractor``:
    once per feature extractor (``name``, ``name_classifier``), as FID is. Appended, so the
    built-in columns of spectral-gan-compare keep their order."""
    variants = ([(name + suffix, f"{description} ({features})") for suffix, features in _EXTRACTORS]
                if per_extractor else [(name, description)])
    for full, text in variants:
        known = METRICS.get(full)
        if known is not None and known.higher_is_better != higher_is_better:
            raise ValueError(f"metric {full!r} is registered with both directions")
        METRICS[full] = MetricSpec(full, higher_is_better, text)


BEST_PREFIX = "best_"  # metrics/best_<name>: the best value so far of the primary metric


def spec(name: str) -> MetricSpec:
    """The spec of ``name``: a bare name (``fid``), a logged tag (``metrics/fid``, ``hp/fid``) or
    the tracked best (``metrics/best_fid``). Unknown names raise KeyError listing the known ones."""
    bare = name.rsplit("/", 1)[-1]
    if bare not in METRICS and bare.startswith(BEST_PREFIX):
        bare = bare[len(BEST_PREFIX):]
    if bare not in METRICS:
        raise KeyError(f"metric {name!r} has no direction; add it to "
                       f"spectral_gan/metrics/registry.py (known: {', '.join(METRICS)})")
    return METRICS[bare]


def higher_is_better(name: str) -> bool:
    return spec(name).higher_is_better


def better(name: str, a: float, b: float) -> bool:
    """Whether ``a`` is strictly better than ``b`` for metric ``name`` (NaN is never better)."""
    return a > b if higher_is_better(name) else a < b


def is_improvement(name: str, new: float, best: float) -> bool:
    """Best-checkpoint test: ``new`` beats the best so far (a tie keeps the earlier checkpoint)."""
    return better(name, new, best)


def worst_value(name: str) -> float:
    """The starting "best so far": any finite value of ``name`` improves on it."""
    return -math.inf if higher_is_better(name) else math.inf


def best_of(name: str, values: Iterable[float]) -> float:
    """The best of ``values``: the maximum when higher is better, else the minimum."""
    return (max if higher_is_better(name) else min)(values)


def tags() -> list[str]:
    """The ``metrics/...`` tags of every registered metric, in table order."""
    return [f"metrics/{name}" for name in METRICS]
