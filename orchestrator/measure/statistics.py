"""The statistics of proof of effect: rates, lifts, intervals and p-values from exact counts.

Every formula here is checked in ``tests/measure/test_statistics.py`` against a published worked
example (the source is cited beside each test).  The layer is pure: counts in, numbers out.

Why no SciPy: the report needs a normal quantile (``statistics.NormalDist`` in the standard
library), a Student *t* quantile for Welch's interval (the regularised incomplete beta function,
about thirty lines, checked against published *t* tables) and Fisher's exact test on small counts
(a sum over the hypergeometric distribution with ``math.lgamma``).  SciPy would bring ~40 MB and a
compiled stack to every worker install for those three functions.

A result is to be read once, at the end of the test that was fixed in advance (a date or a number
of entrants).  Reading it every day and stopping when it first looks good inflates false
positives; nothing here helps with that ("peeking" or sequential stopping is deliberately absent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

#: Confidence level of every interval, and the test's two-sided significance level.
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
#: Power used for the minimum detectable effect.
POWER = 0.80
#: Below this many converters in an arm, a lift is "not enough data yet".
MIN_CONVERSIONS = 10
#: Fisher's exact test replaces the z-test when an expected cell count is below this (Cochran 1954).
MIN_EXPECTED = 5.0

_NORMAL = NormalDist()


def z_quantile(p: float) -> float:
    """The standard normal quantile (``z_quantile(0.975)`` ≈ 1.959964)."""
    return _NORMAL.inv_cdf(p)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided ``CONFIDENCE`` interval."""

    estimate: float
    lower: float
    upper: float

    def scaled(self, factor: float) -> Interval:
        """The same interval multiplied by a positive constant (e.g. treated entrants)."""
        return Interval(self.estimate * factor, self.lower * factor, self.upper * factor)

    def excludes_zero(self) -> bool:
        return self.lower > 0 or self.upper < 0


def wilson(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """A proportion with the Wilson score interval (Wilson 1927; Newcombe 1998a, method 3).

    Unlike the textbook Wald interval it never leaves [0, 1] and keeps its coverage for small
    counts and rates near 0, which is where conversion rates live.
    """
    _check_counts(successes, trials)
    if trials == 0:
        return Interval(0.0, 0.0, 1.0)
    z = z_quantile(1 - (1 - confidence) / 2)
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials)) / (1 + z2n)
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(p, lower, upper)


def newcombe(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = CONFIDENCE
) -> Interval:
    """The difference of two independent proportions ``a - b`` with Newcombe's hybrid score
    interval (Newcombe 1998b, Statistics in Medicine 17:873-890, method 10): the two Wilson
    intervals combined by "square and add".  Its coverage stays close to nominal where the
    Wald interval's collapses (rare conversions, small holdouts)."""
    a, b = wilson(successes_a, trials_a, confidence), wilson(successes_b, trials_b, confidence)
    diff = a.estimate - b.estimate
    lower = diff - math.hypot(a.estimate - a.lower, b.upper - b.estimate)
    upper = diff + math.hypot(b.estimate - b.lower, a.upper - a.estimate)
    return Interval(diff, max(-1.0, lower), min(1.0, upper))


def risk_ratio(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = CONFIDENCE
) -> Interval | None:
    """The ratio of two proportions ``a / b`` with the log (Katz 1978) interval; None when either
    arm has no success (the ratio or its interval is undefined).  Relative lift is this - 1."""
    if successes_a == 0 or successes_b == 0 or trials_a == 0 or trials_b == 0:
        return None
    ratio = (successes_a / trials_a) / (successes_b / trials_b)
    se = math.sqrt(1 / successes_a - 1 / trials_a + 1 / successes_b - 1 / trials_b)
    z = z_quantile(1 - (1 - confidence) / 2)
    return Interval(ratio, ratio * math.exp(-z * se), ratio * math.exp(z * se))


def two_proportion_z(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> tuple[float, float]:
    """The pooled two-proportion z statistic and its two-sided p-value (z² is Pearson's X² for
    the 2x2 table without continuity correction)."""
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if se == 0:
        return 0.0, 1.0
    z = (successes_a / trials_a - successes_b / trials_b) / se
    return z, 2 * (1 - _NORMAL.cdf(abs(z)))


def fisher_exact(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float:
    """Fisher's exact test, two-sided: the probability, given the margins, of every table as
    likely as the observed one or less (the usual definition, as in R's ``fisher.test``)."""
    converters = successes_a + successes_b
    total = trials_a + trials_b
    low, high = max(0, converters - trials_b), min(converters, trials_a)

    def log_p(k: int) -> float:
        return _log_comb(trials_a, k) + _log_comb(trials_b, converters - k) - _log_comb(total, converters)

    observed = log_p(successes_a)
    # A relative tolerance so that tables of equal probability, equal up to rounding, count.
    limit = observed + 1e-7
    p = sum(math.exp(log_p(k)) for k in range(low, high + 1) if log_p(k) <= limit)
    return min(1.0, p)


def p_value(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> tuple[float, str]:
    """The two-sided p-value for "the two rates differ", and the test used: the z-test, or
    Fisher's exact test when an expected count of the 2x2 table is below ``MIN_EXPECTED``."""
    _check_counts(successes_a, trials_a)
    _check_counts(successes_b, trials_b)
    if trials_a == 0 or trials_b == 0:
        return 1.0, "none"
    total, converters = trials_a + trials_b, successes_a + successes_b
    smallest = min(trials_a, trials_b) * min(converters, total - converters) / total
    if smallest < MIN_EXPECTED:
        return fisher_exact(successes_a, trials_a, successes_b, trials_b), "fisher"
    return two_proportion_z(successes_a, trials_a, successes_b, trials_b)[1], "z"


@dataclass(frozen=True)
class Moments:
    """A per-customer amount over ``n`` customers, kept as a sum and a sum of squares."""

    n: int
    total: float
    total_squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The sample variance (n - 1 in the denominator); 0 below two customers."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.total_squares - self.total * self.total / self.n) / (self.n - 1))


@dataclass(frozen=True)
class WelchResult:
    difference: Interval
    t: float
    df: float
    p_value: float


def welch(a: Moments, b: Moments, confidence: float = CONFIDENCE) -> WelchResult | None:
    """The difference of two means ``a - b`` with Welch's interval and test (Welch 1947; the
    Welch-Satterthwaite degrees of freedom).  Revenue is skewed and its variance differs between
    arms, which is what Welch's version allows for.  None when an arm has fewer than two customers."""
    if a.n < 2 or b.n < 2:
        return None
    va, vb = a.variance / a.n, b.variance / b.n
    diff = a.mean - b.mean
    se = math.sqrt(va + vb)
    if se == 0:
        return WelchResult(Interval(diff, diff, diff), 0.0, float(a.n + b.n - 2), 1.0 if diff == 0 else 0.0)
    # Welch-Satterthwaite, written with each arm's share of the variance so that tiny variances
    # do not underflow to 0 / 0.
    share_a, share_b = va / (va + vb), vb / (va + vb)
    df = 1 / (share_a * share_a / (a.n - 1) + share_b * share_b / (b.n - 1))
    half = t_quantile(1 - (1 - confidence) / 2, df) * se
    t = diff / se
    return WelchResult(Interval(diff, diff - half, diff + half), t, df, 2 * t_sf(abs(t), df))


def minimum_detectable_effect(
    baseline: float, trials_a: int, trials_b: int, alpha: float = ALPHA, power: float = POWER
) -> float | None:
    """The smallest absolute difference of rates a two-sided test at ``alpha`` would find with
    probability ``power`` at these sample sizes, around the ``baseline`` rate (normal
    approximation: (z(1-alpha/2) + z_power) · √(p(1-p)(1/n_a + 1/n_b)), as in Fleiss, Levin & Paik,
    Statistical Methods for Rates and Proportions, ch. 4).  None without entrants in an arm."""
    if trials_a == 0 or trials_b == 0:
        return None
    p = min(max(baseline, 0.0), 1.0)
    spread = math.sqrt(p * (1 - p) * (1 / trials_a + 1 / trials_b))
    return (z_quantile(1 - alpha / 2) + z_quantile(power)) * spread


# --- Student's t distribution ------------------------------------------------------------------


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` (possibly fractional) degrees of freedom, t ≥ 0."""
    if t < 0:
        return 1 - t_sf(-t, df)
    return 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t: Newton's steps on :func:`t_sf` inside a bracket that each
    evaluation narrows (a step leaving it bisects instead), to 1e-10, plenty for intervals.  A
    handful of evaluations instead of bisection's ~40: a report computes one per comparison."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p!r}, df={df!r}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    target = 1 - p
    low, high = 0.0, 1.0
    while t_sf(high, df) > target:
        low, high = high, high * 2
    t = (low + high) / 2
    for _ in range(200):
        tail = t_sf(t, df)
        if tail > target:
            low = t
        else:
            high = t
        step = (tail - target) / _t_density(t, df)
        following = t + step
        if not low < following < high:
            following = (low + high) / 2
        if abs(following - t) < 1e-11 or high - low < 1e-10:
            return following
        t = following
    return t


def _t_density(t: float, df: float) -> float:
    """Student's t density at ``t``."""
    log_front = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_front - (df + 1) / 2 * math.log1p(t * t / df))


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) by its continued fraction (modified
    Lentz), with the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where that converges faster."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):
        return 1 - _incomplete_beta(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"counts must satisfy 0 ≤ successes ≤ trials, got {successes!r} of {trials!r}")
