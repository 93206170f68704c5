"""Statistics for eval results: confidence intervals, pass@k, pass^k and paired tests.

Kept free of numpy so the report runs anywhere the harness runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (better than the normal one near 0 and 1)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k: chance that at least one of k attempts drawn from n (c correct) passes."""
    _check_nck(n, c, k)
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k: chance that all of k attempts drawn from n (c correct) pass (reliability)."""
    _check_nck(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def _check_nck(n: int, c: int, k: int) -> None:
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")


def binomial_two_sided_p(wins: int, losses: int) -> float:
    """Exact two-sided sign-test p-value for `wins` vs `losses` (ties left out), p=0.5."""
    n = wins + losses
    if n == 0:
        return 1.0
    low = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedCount:
    """Discordant pairs of two models on the same items: McNemar's b and c."""

    a_only: int  # A passed, B failed
    b_only: int  # B passed, A failed
    both: int
    neither: int

    @property
    def p_value(self) -> float:
        """Exact McNemar test (a sign test on the discordant pairs)."""
        return binomial_two_sided_p(self.a_only, self.b_only)


def paired_count(a: dict[object, bool], b: dict[object, bool]) -> PairedCount:
    """Count agreement on the keys both dicts share (e.g. (task, attempt) pairs)."""
    keys = a.keys() & b.keys()
    a_only = sum(1 for k in keys if a[k] and not b[k])
    b_only = sum(1 for k in keys if b[k] and not a[k])
    both = sum(1 for k in keys if a[k] and b[k])
    return PairedCount(a_only=a_only, b_only=b_only, both=both, neither=len(keys) - a_only - b_only - both)
