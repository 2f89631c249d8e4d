"""A user's feature metric, outside the package: the distance between the real and generated
feature means (a toy: the first term of FID). Registered on import; trained with
``eval.metrics=[mean_distance] eval.metric_modules=[tests.toy_metric]``."""
from __future__ import annotations

import torch

from spectral_gan.metrics.feature_metrics import register_feature_metric


@register_feature_metric("mean_distance", higher_is_better=False,
                         description="L2 distance between the real and generated feature means")
class MeanDistance:
    def __init__(self, num_features: int) -> None:
        self.sums = {side: torch.zeros(num_features, dtype=torch.float64) for side in (True, False)}
        self.counts = {True: 0, False: 0}

    def update(self, features: torch.Tensor, real: bool) -> None:
        self.sums[real] += features.detach().double().sum(0).cpu()
        self.counts[real] += len(features)

    def compute(self) -> float:
        means = [self.sums[side] / max(self.counts[side], 1) for side in (True, False)]
        return float(torch.linalg.norm(means[0] - means[1]))

    def reset_fake(self) -> None:
        self.sums[False].zero_()
        self.counts[False] = 0
