"""A paired t-test over seeds, with the t distribution from the regularized incomplete beta
function (a continued fraction, as in Numerical Recipes); math only, no scipy."""

from __future__ import annotations

import math
from dataclasses import dataclass


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging for x < (a + 1) / (a + b + 2)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
                          -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0) or not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs a, b > 0 and 0 <= x <= 1 (got a={a}, b={b}, x={x})")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|)."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def stdev(xs: list[float]) -> float:
    """The sample standard deviation (n - 1); 0 for a single value."""
    if len(xs) < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


@dataclass
class PairedTest:
    """Difference ``b - a`` of paired samples: its mean, t statistic, p-value (None below 2 pairs)."""

    n: int
    diff: float
    t: float | None
    p: float | None


def paired_t_test(a: list[float], b: list[float]) -> PairedTest:
    """The paired t-test of ``b`` against ``a`` (same length, paired by position: by seed)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths ({len(a)} vs {len(b)})")
    diffs = [y - x for x, y in zip(a, b)]
    n = len(diffs)
    if n == 0 or not all(math.isfinite(d) for d in diffs):
        return PairedTest(n, math.nan, None, None)
    d = mean(diffs)
    if n < 2:
        return PairedTest(n, d, None, None)
    sd = stdev(diffs)
    if sd == 0:
        t = 0.0 if d == 0 else math.copysign(math.inf, d)
    else:
        t = d / (sd / math.sqrt(n))
    return PairedTest(n, d, t, 1.0 if t == 0 else two_sided_p(t, n - 1))
