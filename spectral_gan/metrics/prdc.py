"""Precision, recall, density and coverage of generated features: k-nearest-neighbour manifolds.

- Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019, "Improved Precision and
  Recall Metric for Assessing Generative Models", Section 2, k=3): each real feature's ball
  reaches its k-th nearest other real feature; precision is the share of generated features in
  at least one real ball, recall the share of real features in at least one generated ball
  (balls built the same way from the generated features).
- Density and coverage (Naeem et al., ICML 2020, "Reliable Fidelity and Diversity Metrics for
  Generative Models", Section 3, k=5): real balls only. density = (1/kM) sum over the M
  generated features of the number of real balls holding each (can exceed 1; identical sets
  give 1 + 1/k, each point lying in its own ball as well); coverage = the share of real balls
  holding at least one generated feature.

A point on a ball's edge is inside (distance <= radius). Distances are Euclidean, in float64,
taken ``chunk`` rows at a time so that 10k x 10k features never hold a full distance matrix.
Too few samples for a k-th neighbour (fewer than k + 1 on a side) give NaN with a warning, not
an error: an evaluation that is too small must not end a training run.
"""
from __future__ import annotations

import math
import warnings

import torch

from spectral_gan.metrics.feature_metrics import register_feature_metric
from spectral_gan.metrics.registry import suite_metric

K_PR, K_DC = 3, 5  # the papers' k: precision/recall, density/coverage
CHUNK = 1024       # rows per distance block: 1024 x 10k float64 = 80 MB
NAMES = ("precision", "recall", "density", "coverage")


def _blocks(x: torch.Tensor, y: torch.Tensor, chunk: int):
    """(start, distances of rows start.. of x to every row of y), ``chunk`` rows at a time."""
    for start in range(0, len(x), chunk):
        yield start, torch.cdist(x[start:start + chunk], y)


def knn_radii(x: torch.Tensor, ks: tuple[int, ...], chunk: int = CHUNK) -> dict[int, torch.Tensor]:
    """For each k in ``ks``: each row's distance to its k-th nearest other row (itself excluded),
    all from one pass over the distances."""
    top = max(ks)
    found = []
    for start, d in _blocks(x, x, chunk):
        rows = torch.arange(len(d), device=d.device)
        d[rows, rows + start] = math.inf  # a point is not its own neighbour
        found.append(d.topk(top, dim=1, largest=False).values)
    nearest = torch.cat(found)
    return {k: nearest[:, k - 1] for k in ks}


def prdc(real: torch.Tensor, fake: torch.Tensor, real_radii: dict[int, torch.Tensor] | None = None,
         chunk: int = CHUNK) -> dict[str, float]:
    """The four metrics of ``fake`` against ``real`` (rows are features). ``real_radii``:
    ``knn_radii(real, (K_PR, K_DC))``, passed in by callers that keep it between evaluations."""
    real, fake = real.double(), fake.double()
    short = [f"{n} {side} samples (< {k + 1})" for side, n, k in
             (("real", len(real), K_DC), ("generated", len(fake), K_PR)) if n < k + 1]
    if short:
        warnings.warn(f"precision/recall/density/coverage need a k-th nearest neighbour on each "
                      f"side: {', '.join(short)}; logged as nan", RuntimeWarning)
        return dict.fromkeys(NAMES, math.nan)
    if real_radii is None:
        real_radii = knn_radii(real, (K_PR, K_DC), chunk)
    r_pr, r_dc = real_radii[K_PR], real_radii[K_DC]
    fake_radius = knn_radii(fake, (K_PR,), chunk)[K_PR]
    in_real = 0                                   # generated features in some real k=3 ball
    in_balls = 0                                  # (generated, real k=5 ball) pairs, for density
    nearest_fake = torch.full_like(r_dc, math.inf)  # per real feature, for coverage
    recalled = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    for start, d in _blocks(fake, real, chunk):  # rows: generated, columns: real
        in_real += int((d <= r_pr).any(dim=1).sum())
        in_balls += int((d <= r_dc).sum())
        nearest_fake = torch.minimum(nearest_fake, d.min(dim=0).values)
        recalled |= (d <= fake_radius[start:start + len(d), None]).any(dim=0)
    return {"precision": in_real / len(fake), "recall": float(recalled.double().mean()),
            "density": in_balls / (K_DC * len(fake)),
            "coverage": float((nearest_fake <= r_dc).double().mean())}


class PRDCState:
    """The features one suite's four metrics share. The real side and its radii are computed
    once (the reference does not change between evaluations); the four values once per
    evaluation, on the first ``compute`` after new generated features."""

    def __init__(self, num_features: int) -> None:
        self.num_features = num_features
        self.real: list[torch.Tensor] = []
        self.fake: list[torch.Tensor] = []
        self._radii: dict[int, torch.Tensor] | None = None
        self._values: dict[str, float] | None = None

    def update(self, features: torch.Tensor, real: bool) -> None:
        (self.real if real else self.fake).append(features.detach().double())
        self._values = None
        if real:
            self._radii = None

    def reset_fake(self) -> None:
        self.fake, self._values = [], None

    def _real(self) -> torch.Tensor:
        if len(self.real) > 1:  # one tensor from here on: no copy per evaluation
            self.real = [torch.cat(self.real)]
        return self.real[0] if self.real else torch.zeros(0, self.num_features, dtype=torch.float64)

    def values(self) -> dict[str, float]:
        if self._values is None:
            real = self._real()
            fake = torch.cat(self.fake) if self.fake else real.new_zeros(0, self.num_features)
            if self._radii is None and len(real) > K_DC:
                self._radii = knn_radii(real, (K_PR, K_DC))
            self._values = prdc(real, fake.to(real.device), self._radii)
        return self._values

    # the reference cache (MetricSuite.save_real / load_real): the real features, float32
    def real_state(self) -> dict[str, torch.Tensor]:
        return {"prdc_real_features": self._real().float()}

    def load_real_state(self, state: dict[str, torch.Tensor]) -> None:
        self.real, self._radii, self._values = [state["prdc_real_features"].double()], None, None


class _View:
    """One of the four values, read from the suite's shared ``PRDCState``."""
    shared_state = PRDCState
    name = ""

    def __init__(self, state: PRDCState) -> None:
        self.state = state

    def compute(self) -> float:
        return self.state.values()[self.name]


for _name in NAMES:  # four registered names, one shared state per suite (feature_metrics.build)
    register_feature_metric(_name, *suite_metric(_name))(
        type(_name.capitalize(), (_View,), {"name": _name, "__qualname__": _name.capitalize()}))
