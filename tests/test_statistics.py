"""The one-sided Mann-Whitney U test, cross-checked against scipy (an independent implementation)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from edgegate_cli.errors import InvalidInput
from edgegate_cli.gating.statistics import average_ranks, mann_whitney_u_greater

REL = 1e-9


def _scipy(candidate, baseline, method):
    return stats.mannwhitneyu(candidate, baseline, alternative="greater", method=method, use_continuity=True)


def _random_case(rng, max_n: int, ties: bool):
    n1, n2 = (int(v) for v in rng.integers(1, max_n + 1, 2))
    shift = rng.normal(0, 1)
    scale = rng.uniform(0.1, 5)
    cand = rng.normal(shift, scale, n1)
    base = rng.normal(0, scale, n2)
    if ties:  # coarse rounding makes tie groups of every size
        cand, base = np.round(cand), np.round(base)
    return cand, base


@pytest.mark.parametrize("ties", [False, True])
def test_asymptotic_p_values_match_scipy_on_many_random_cases(ties):
    """2,000 random cases (sizes 1-300, with and without ties): U equal, p within 1e-9 relative."""
    rng = np.random.default_rng(20261123 + ties)
    for _ in range(2000):
        cand, base = _random_case(rng, 300, ties)
        u, p = mann_whitney_u_greater(cand, base, method="asymptotic")
        ref = _scipy(cand, base, "asymptotic")
        assert u == ref.statistic
        assert p == pytest.approx(ref.pvalue, rel=REL, abs=0), (cand, base)


def test_exact_p_values_match_scipy_for_small_samples_without_ties():
    """Every size pair up to 8 x 8, several draws each: the exact permutation distribution matches."""
    rng = np.random.default_rng(7)
    for n1 in range(1, 9):
        for n2 in range(1, 9):
            for _ in range(5):
                cand = rng.normal(rng.normal(0, 1), 1, n1)
                base = rng.normal(0, 1, n2)
                u, p = mann_whitney_u_greater(cand, base)
                ref = _scipy(cand, base, "exact")
                assert u == ref.statistic
                assert p == pytest.approx(ref.pvalue, rel=REL, abs=0)


def test_auto_uses_exact_only_for_small_samples_without_ties():
    """3 vs 3 fully separated: exact p = 1/C(6,3) = 0.05; with a tie or 9 values it is asymptotic."""
    assert mann_whitney_u_greater([4, 5, 6], [1, 2, 3]) == (9.0, pytest.approx(0.05, rel=REL))
    tied = mann_whitney_u_greater([3, 5, 6], [1, 2, 3])
    assert tied[1] == pytest.approx(_scipy([3, 5, 6], [1, 2, 3], "asymptotic").pvalue, rel=REL)
    big = list(range(10, 19))
    assert mann_whitney_u_greater(big, [1, 2, 3])[1] == pytest.approx(_scipy(big, [1, 2, 3], "asymptotic").pvalue,
                                                                     rel=REL)


def test_far_tail_p_values_keep_their_relative_precision():
    """Completely separated samples of 200 give p around 1e-67; still 1e-9 relative to scipy."""
    rng = np.random.default_rng(3)
    cand, base = rng.normal(20, 1, 200), rng.normal(0, 1, 200)
    _, p = mann_whitney_u_greater(cand, base)
    ref = _scipy(cand, base, "asymptotic").pvalue
    assert 0 < ref < 1e-60
    assert p == pytest.approx(ref, rel=REL, abs=0)


def test_identical_samples_give_p_one_like_scipy():
    """All values equal: the variance is zero; no evidence that the candidate is greater."""
    assert mann_whitney_u_greater([2.0] * 5, [2.0] * 7) == (17.5, 1.0)
    assert _scipy([2.0] * 5, [2.0] * 7, "asymptotic").pvalue == 1.0


def test_candidate_smaller_gives_large_p():
    """The test is one-sided: a candidate that is clearly smaller has p near 1."""
    _, p = mann_whitney_u_greater(np.arange(50) - 100.0, np.arange(50.0))
    assert p > 0.999


def test_average_ranks_match_scipy_rankdata_and_count_ties():
    values = [3.0, 1.0, 3.0, 2.0, 3.0, 1.0]
    ranks, ties = average_ranks(values)
    assert ranks.tolist() == stats.rankdata(values).tolist() == [5.0, 1.5, 5.0, 3.0, 5.0, 1.5]
    assert sorted(ties.tolist()) == [1, 2, 3]


@pytest.mark.parametrize(("candidate", "baseline", "message"), [
    ([], [1.0], "candidate samples are empty; the Mann-Whitney U test needs at least one value each"),
    ([1.0], [], "baseline samples are empty; the Mann-Whitney U test needs at least one value each"),
    ([1.0, float("nan")], [1.0], "candidate samples contain a NaN or infinite value"),
    ([1.0], [float("inf")], "baseline samples contain a NaN or infinite value"),
])
def test_bad_samples_are_invalid_input(candidate, baseline, message):
    with pytest.raises(InvalidInput) as err:
        mann_whitney_u_greater(candidate, baseline)
    assert err.value.message == message


def test_exact_method_refuses_ties_and_unknown_methods_are_refused():
    with pytest.raises(InvalidInput) as err:
        mann_whitney_u_greater([1.0, 2.0], [2.0, 3.0], method="exact")
    assert err.value.message == "the exact Mann-Whitney U distribution assumes no ties; use method='asymptotic'"
    with pytest.raises(InvalidInput) as err:
        mann_whitney_u_greater([1.0], [2.0], method="permutation")
    assert err.value.message == "unknown Mann-Whitney U method 'permutation'; expected auto, exact or asymptotic"
