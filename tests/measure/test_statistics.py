"""The statistics of proof of effect, each formula checked against a published worked example
(the source is cited in each test) and the lift's interval checked for coverage on a world whose
true effect is known."""

from __future__ import annotations

import random

import pytest

from orchestrator.measure.statistics import (
    Moments,
    fisher_exact,
    minimum_detectable_effect,
    newcombe,
    p_value,
    risk_ratio,
    t_quantile,
    t_sf,
    two_proportion_z,
    welch,
    wilson,
    z_quantile,
)


@pytest.mark.parametrize(
    ("successes", "trials", "lower", "upper"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_newcombe_1998a(successes: int, trials: int, lower: float, upper: float) -> None:
    """Newcombe RG (1998a), Two-sided confidence intervals for the single proportion: comparison
    of seven methods, Statistics in Medicine 17:857-872, Table II, method 3 (Wilson score)."""
    interval = wilson(successes, trials)
    assert interval.estimate == pytest.approx(successes / trials)
    assert (round(interval.lower, 4), round(interval.upper, 4)) == (lower, upper)


@pytest.mark.parametrize(
    ("counts", "lower", "upper"),
    [
        ((56, 70, 48, 80), 0.0524, 0.3339),
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((6, 7, 2, 7), 0.0582, 0.8062),
        ((5, 56, 0, 29), -0.0381, 0.1926),
        ((0, 10, 0, 20), -0.1611, 0.2775),
        ((0, 10, 0, 10), -0.2775, 0.2775),
        ((10, 10, 0, 20), 0.6791, 1.0),
        ((10, 10, 0, 10), 0.6075, 1.0),
    ],
)
def test_newcombe_hybrid_score_matches_newcombe_1998b(
    counts: tuple[int, int, int, int], lower: float, upper: float
) -> None:
    """Newcombe RG (1998b), Interval estimation for the difference between independent
    proportions: comparison of eleven methods, Statistics in Medicine 17:873-890, Table II,
    examples (a)-(h), method 10 (hybrid score, no continuity correction)."""
    interval = newcombe(*counts)
    assert interval.estimate == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert (round(interval.lower, 4), round(interval.upper, 4)) == (lower, upper)


def test_z_test_matches_agresti_physicians_health_study() -> None:
    """Agresti A (2002), Categorical Data Analysis, 2nd ed., §2.2 and §3.2 (Physicians' Health
    Study, myocardial infarction: placebo 189/11034, aspirin 104/11037): Pearson X² = 25.01, so
    z = 5.00; p < 0.0001."""
    z, p = two_proportion_z(189, 11034, 104, 11037)
    assert z * z == pytest.approx(25.01, abs=0.005)
    assert p < 1e-4
    assert p_value(189, 11034, 104, 11037) == (p, "z")


def test_relative_risk_matches_agresti() -> None:
    """Agresti A (2002), Categorical Data Analysis, 2nd ed., §2.2.4: the same study's relative
    risk 1.82 with 95 % interval (1.43, 2.30), published to two decimals."""
    ratio = risk_ratio(189, 11034, 104, 11037)
    assert ratio is not None
    assert ratio.estimate == pytest.approx(1.82, abs=0.005)
    assert ratio.lower == pytest.approx(1.43, abs=0.01)
    assert ratio.upper == pytest.approx(2.30, abs=0.01)
    assert risk_ratio(0, 10, 3, 10) is None


def test_fisher_exact_matches_the_tea_tasting() -> None:
    """Fisher RA (1935), The Design of Experiments, the lady tasting tea, as worked in Agresti A
    (2002), Categorical Data Analysis, 2nd ed., §3.5.1, Table 3.8: 3 of 4 cups right; the
    one-sided P = 0.243, the two-sided P = 0.486."""
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(0.4857, abs=1e-4)
    assert fisher_exact(4, 4, 0, 4) == pytest.approx(2 / 70)
    assert p_value(3, 4, 1, 4) == (pytest.approx(0.4857, abs=1e-4), "fisher")


def test_welch_matches_nist_auto83b() -> None:
    """NIST/SEMATECH e-Handbook of Statistical Methods, §1.3.5.3 Two-Sample t-Test (AUTO83B:
    US cars n=249, mean 20.14458, s 6.41470; Japanese cars n=79, mean 30.48101, s 6.10771),
    unequal variances: T = -12.94627 with nu = 136.8750."""

    def moments(n: int, mean: float, sd: float) -> Moments:
        return Moments(n, n * mean, (n - 1) * sd * sd + n * mean * mean)

    result = welch(moments(249, 20.14458, 6.41470), moments(79, 30.48101, 6.10771))
    assert result is not None
    assert result.t == pytest.approx(-12.94627, abs=1e-4)
    assert result.df == pytest.approx(136.8750, abs=1e-3)
    assert result.difference.estimate == pytest.approx(-10.33643, abs=1e-5)
    half = t_quantile(0.975, result.df) * 10.33643 / 12.94627
    assert result.difference.lower == pytest.approx(-10.33643 - half, abs=1e-4)
    assert result.p_value < 1e-20
    assert welch(Moments(1, 5.0, 25.0), Moments(10, 1.0, 1.0)) is None


@pytest.mark.parametrize(
    ("df", "quantile"), [(1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042), (120, 1.980)]
)
def test_t_quantile_matches_the_nist_table(df: float, quantile: float) -> None:
    """NIST/SEMATECH e-Handbook of Statistical Methods, §1.3.6.7.2 Critical Values of the
    Student's t Distribution, the 0.975 column."""
    assert round(t_quantile(0.975, df), 3) == quantile
    assert t_sf(t_quantile(0.975, df), df) == pytest.approx(0.025, abs=1e-9)
    assert t_quantile(0.025, df) == pytest.approx(-t_quantile(0.975, df))


def test_normal_quantile() -> None:
    """Abramowitz & Stegun (1964), Handbook of Mathematical Functions, Table 26.5: z for 0.975 and 0.8."""
    assert round(z_quantile(0.975), 4) == 1.9600
    assert round(z_quantile(0.80), 4) == 0.8416


def test_minimum_detectable_effect_follows_lehrs_rule() -> None:
    """Lehr R (1992), Sixteen S-squared over D-squared: a relation for crude sample size
    estimates, Statistics in Medicine 11:1099-1102: at 80 % power and 5 % two-sided, n per arm
    ≈ 16sigma²/delta².  For p = 0.5 (sigma² = 0.25) and 100 per arm that is delta ≈ 0.2 (the exact factor 15.7)."""
    mde = minimum_detectable_effect(0.5, 100, 100)
    assert mde is not None
    assert 16 * 0.25 / mde**2 == pytest.approx(100 * 16 / 15.70, rel=0.01)
    assert minimum_detectable_effect(0.1, 0, 100) is None
    assert minimum_detectable_effect(0.1, 400, 400) < minimum_detectable_effect(0.1, 100, 100)  # type: ignore[operator]


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson(5, 3)
    assert wilson(0, 0).upper == 1.0


def _binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(n))


def test_the_lift_interval_covers_the_known_truth() -> None:
    """A world whose effect is known: 20,000 entrants split 90/10 (the usual holdout), treated
    converting at 12 %, holdout at 8 %.  In 100 seeded runs the 95 % Newcombe interval of the
    lift covers the true 4 pp at least 93 times (expected ≈ 95; a Wald interval at 90 % would not)."""
    truth = 0.12 - 0.08
    treated, holdout = 18_000, 2_000
    covered = 0
    for seed in range(100):
        rng = random.Random(seed)
        interval = newcombe(_binomial(rng, treated, 0.12), treated, _binomial(rng, holdout, 0.08), holdout)
        covered += interval.lower <= truth <= interval.upper
    assert covered >= 93


def test_the_coverage_check_can_fail() -> None:
    """The same world read with a 50 % interval covers the truth far less often: the check above
    has teeth."""
    truth = 0.04
    covered = 0
    for seed in range(100):
        rng = random.Random(seed)
        interval = newcombe(_binomial(rng, 18_000, 0.12), 18_000, _binomial(rng, 2_000, 0.08), 2_000, confidence=0.5)
        covered += interval.lower <= truth <= interval.upper
    assert covered < 93
