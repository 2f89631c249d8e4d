"""Metric suites by extractor, each with the protocol facts recorded next to its numbers."""
from __future__ import annotations

import warnings
from typing import Any

from spectral_gan.metrics.classifier import FEATURE_DIM, load_classifier, weights_path
from spectral_gan.metrics.inception import IS_HINT, InceptionFeatures
from spectral_gan.metrics.suite import MetricSuite

CLASSIFIER_DATASETS = ("mnist5k", "digits")
INCEPTION_EXTRACTOR = "inception-v3-2015-12-05"  # the protocol's extractor name (and .npz files')
_warned_is = False


def inception_suite(kid: bool = False, kid_subset_size: int = 1000, extra: tuple[str, ...] = ()
                    ) -> tuple[MetricSuite, dict[str, Any]]:
    """FID/KID on Inception pool features, IS on its logits when the weights have them."""
    global _warned_is
    net = InceptionFeatures()
    if not net.has_logits and not _warned_is:
        warnings.warn(IS_HINT)
        _warned_is = True
    suite = MetricSuite(net, net.num_features, net.logits if net.has_logits else None, kid=kid,
                        kid_subset_size=kid_subset_size,
                        features_and_logits=net.features_and_logits if net.has_logits else None,
                        extra=extra)
    return suite, {"extractor": INCEPTION_EXTRACTOR, "weights": net.origin,
                   "input": "resized to 299x299 (TF1 bilinear)"}


def classifier_suite(dataset: str, kid: bool = False, kid_subset_size: int = 1000,
                     extra: tuple[str, ...] = ()) -> tuple[MetricSuite, dict[str, Any]]:
    """Classifier FID (penultimate features) and IS (class logits) for MNIST-like data."""
    net = load_classifier(dataset)
    suite = MetricSuite(net.features, FEATURE_DIM, net, kid=kid, kid_subset_size=kid_subset_size,
                        suffix="_classifier", features_and_logits=net.features_and_logits,
                        extra=extra)
    suite.classifier = net  # keep the weights inside the module tree (device moves)
    return suite, {"extractor": f"{dataset}-digit-classifier", "weights": weights_path(dataset),
                   "input": "1x32x32 in [-1, 1]"}
