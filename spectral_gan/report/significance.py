"""Is a difference between two configurations beyond seed noise?

Welch's t interval for the difference of two means (Welch 1947; unequal variances, the
Welch-Satterthwaite degrees of freedom), the usual choice for a handful of seeds per setting: a
difference whose 95% interval excludes 0 is called "beyond seed noise". With 2-5 seeds per row
the interval is wide; a difference inside it is not evidence of no effect, only of none shown.

The t quantile is computed here (Simpson's rule on the t density, then bisection), so the report
needs no statistics package.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

METHOD = "Welch t interval, 95%"


def _t_density(x: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


def t_cdf(x: float, df: float, intervals: int = 4000) -> float:
    """P(T <= x) for Student's t with ``df`` degrees of freedom (``df`` may be fractional)."""
    if x == 0:
        return 0.5
    a, b = 0.0, abs(x)
    h = (b - a) / intervals
    total = _t_density(a, df) + _t_density(b, df)
    for i in range(1, intervals):
        total += (4 if i % 2 else 2) * _t_density(a + i * h, df)
    area = total * h / 3
    return 0.5 + area if x > 0 else 0.5 - area


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (0.5 < p < 1), by bisection on :func:`t_cdf`."""
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with its interval; ``beyond_noise`` when the interval excludes 0."""

    diff: float
    low: float
    high: float
    df: float

    @property
    def beyond_noise(self) -> bool:
        return self.low > 0 or self.high < 0


def welch(a: list[float], b: list[float], level: float = 0.95) -> Difference | None:
    """Welch's interval for ``mean(a) - mean(b)``; None with fewer than 2 values on a side (no
    spread to compare against). Two constant samples give a zero-width interval."""
    a = [v for v in a if v is not None and math.isfinite(v)]
    b = [v for v in b if v is not None and math.isfinite(v)]
    if len(a) < 2 or len(b) < 2:
        return None
    return welch_summary(statistics.fmean(a), statistics.stdev(a), len(a),
                         statistics.fmean(b), statistics.stdev(b), len(b), level)


def welch_summary(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int,
                  level: float = 0.95) -> Difference | None:
    """:func:`welch` from each side's mean, sample standard deviation and count (for tables that
    kept only those)."""
    if n_a < 2 or n_b < 2:
        return None
    diff = mean_a - mean_b
    va, vb = sd_a ** 2 / n_a, sd_b ** 2 / n_b
    se2 = va + vb
    if se2 == 0:
        return Difference(diff, diff, diff, float("inf"))
    df = se2 ** 2 / ((va ** 2 / (n_a - 1) if va else 0.0) + (vb ** 2 / (n_b - 1) if vb else 0.0))
    half = t_quantile(0.5 + level / 2, df) * math.sqrt(se2)
    return Difference(diff, diff - half, diff + half, df)


def reverse_kl_floor(modes: int, samples: int) -> float:
    """Expected reverse KL of a perfect generator's mode histogram against uniform:
    about (K - 1) / (2N) for N samples over K equally likely modes (the chi-square
    approximation of the plug-in KL). Differences below it are sampling noise."""
    return (modes - 1) / (2 * samples)
