"""Rank statistics for relative gates (SPEC §6 step 6): a one-sided Mann-Whitney U test in numpy.

`mann_whitney_u_greater(candidate, baseline)` asks whether the candidate's samples are
stochastically greater than the baseline's. It matches
`scipy.stats.mannwhitneyu(candidate, baseline, alternative="greater", method=...)`:

- **exact** (the default when both samples have at most `EXACT_MAX_N` values and there are no
  ties): the permutation distribution of U, computed by the classic recurrence;
- **asymptotic** otherwise: the normal approximation with the tie correction and the continuity
  correction (`use_continuity=True`).

scipy is used only by the tests, to cross-check p-values. Medians and CVs live in `mapping.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from ..errors import InvalidInput

EXACT_MAX_N = 8  # both samples at most this long and no ties → the exact distribution

Method = Literal["auto", "exact", "asymptotic"]


def _as_array(values: Sequence[float], name: str):
    import numpy as np

    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise InvalidInput(f"{name} samples are empty; the Mann-Whitney U test needs at least one value each")
    if not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{name} samples contain a NaN or infinite value")
    return arr


def average_ranks(values):
    """(ranks, tie_sizes): 1-based ranks with ties given their average rank, and each tie group's size.

    Equivalent to `scipy.stats.rankdata(values, "average")`; `tie_sizes` lists every group of equal
    values (size 1 for distinct values), as the tie correction needs.
    """
    import numpy as np

    arr = np.asarray(values, dtype=float)
    order = np.argsort(arr, kind="mergesort")
    ordered = arr[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts)  # 1-based group number of each sorted value
    bounds = np.r_[np.flatnonzero(starts), arr.size]  # where each group starts, plus the end
    sorted_ranks = 0.5 * (bounds[group] + bounds[group - 1] + 1)
    ranks = np.empty(arr.size, dtype=float)
    ranks[order] = sorted_ranks
    return ranks, np.diff(bounds)


def _exact_sf(u: float, n1: int, n2: int) -> float:
    """P(U1 >= u) under H0 for sample sizes n1, n2 with no ties (all rank orders equally likely).

    Recurrence on the largest value: it belongs to sample 1 with probability n1/(n1+n2), adding n2
    to U1, or to sample 2 with probability n2/(n1+n2). Probabilities, not counts, so nothing overflows.
    """
    import numpy as np

    size = n1 * n2 + 1
    # table[j] is the pmf of U1 for sizes (i, j) as i grows row by row; start with i = 0: U1 = 0.
    table = [np.eye(1, size, 0).ravel() for _ in range(n2 + 1)]
    for i in range(1, n1 + 1):
        row = [np.eye(1, size, 0).ravel()]  # j = 0: all i values rank below nothing → U1 = 0
        for j in range(1, n2 + 1):
            shifted = np.zeros(size)
            shifted[j:] = table[j][:size - j]  # the largest is from sample 1: U1 grows by j
            row.append(i / (i + j) * shifted + j / (i + j) * row[j - 1])
        table = row
    pmf = table[n2]
    k = int(math.ceil(u - 1e-9))
    return float(min(1.0, max(0.0, pmf[k:].sum())))


def _asymptotic_sf(u: float, n1: int, n2: int, tie_sizes) -> float:
    """Normal approximation of P(U1 >= u) with tie and continuity corrections (scipy's `_get_mwu_z`)."""
    n = n1 + n2
    tie_term = float((tie_sizes.astype(float) ** 3 - tie_sizes).sum())
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    numerator = u - n1 * n2 / 2 - 0.5
    if variance <= 0:  # every value equal: no evidence that the candidate is greater
        return 1.0 if numerator <= 0 else 0.0
    z = numerator / math.sqrt(variance)
    return min(1.0, max(0.0, 0.5 * math.erfc(z / math.sqrt(2))))


def mann_whitney_u_greater(candidate: Sequence[float], baseline: Sequence[float], *,
                           method: Method = "auto") -> tuple[float, float]:
    """One-sided Mann-Whitney U test that `candidate` is stochastically greater than `baseline`.

    Returns `(u, p)`: `u` is the candidate's U statistic (pairs where the candidate value is larger,
    ties counting one half), `p` the one-sided p-value. `method="auto"` uses the exact distribution
    when both samples have at most 8 values and no value repeats, else the normal approximation
    (tie- and continuity-corrected), as scipy's `method="exact"`/`"asymptotic"` do.
    To test "smaller", swap nothing: negate both samples.

    Raises InvalidInput if a sample is empty or holds a NaN/infinite value, or if `method="exact"`
    is asked for with ties.
    """
    cand = _as_array(candidate, "candidate")
    base = _as_array(baseline, "baseline")
    import numpy as np

    n1, n2 = cand.size, base.size
    ranks, tie_sizes = average_ranks(np.concatenate([cand, base]))
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    has_ties = bool((tie_sizes > 1).any())
    if method == "auto":
        method = "exact" if n1 <= EXACT_MAX_N and n2 <= EXACT_MAX_N and not has_ties else "asymptotic"
    if method == "exact":
        if has_ties:
            raise InvalidInput("the exact Mann-Whitney U distribution assumes no ties; use method='asymptotic'")
        return u, _exact_sf(u, n1, n2)
    if method != "asymptotic":
        raise InvalidInput(f"unknown Mann-Whitney U method {method!r}; expected auto, exact or asymptotic")
    return u, _asymptotic_sf(u, n1, n2, tie_sizes)
