"""How sure a number is: percentile bootstrap confidence intervals of a mean over annotations (or queries), and
the paired bootstrap of the difference between two methods measured on the same annotations.

An aggregate over splits (Table B's FG-OVD Mean Rank: the mean of the eight splits' mean ranks) is bootstrapped
stratified: given a mapping ``{split: values}``, each resample redraws every split's annotations within the split
and takes the mean of the split means, so the interval is that of the aggregate as the paper computes it.

Resamples are drawn with a seeded ``torch.Generator`` (the same seed gives the same interval). Values with few
distinct levels (ranks, their paired differences, 0/1 hits) are resampled as multinomial counts of each level,
which is the same distribution at a cost that does not grow with the number of values; others in chunks of
resamples, one gather and mean each (``benchmarks/bench_bootstrap.py`` times both).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

CHUNK_ELEMENTS = 1 << 22  # indices drawn at once (32 MiB of int64)
MAX_LEVELS = 64  # values with at most this many distinct levels are resampled as multinomial counts


def _values(values, what: str = "values") -> torch.Tensor:
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    if x.numel() == 0:
        raise ValueError(f"{what} is empty: no interval can be given")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} holds a non-finite value")
    return x


def resampled_means(values, n_boot: int = 1000, seed: int = 0) -> torch.Tensor:
    """``n_boot`` means of ``values`` resampled with replacement (``(n_boot,)``, float64); for a mapping of
    groups, the mean over groups of each group's resampled mean (the groups drawn independently)."""
    if isinstance(values, Mapping):
        if not values:
            raise ValueError("no groups: no interval can be given")
        return torch.stack([resampled_means(v, n_boot, seed + i) for i, v in enumerate(values.values())]).mean(0)
    x = _values(values)
    n = x.numel()
    g = torch.Generator().manual_seed(int(seed))
    levels, weights = torch.unique(x, return_counts=True)
    if len(levels) <= MAX_LEVELS:
        # few distinct values (ranks 1..N+1, their paired differences, a recall's 0/1 hits): how often each value
        # is drawn in n draws with replacement is Multinomial(n, its share), the very distribution of resampling,
        # drawn level by level as binomials of what is left: O(n_boot x levels) instead of O(n_boot x n)
        left = torch.full((n_boot,), float(n), dtype=torch.float64)
        share_left, total = 1.0, torch.zeros(n_boot, dtype=torch.float64)
        for level, share in zip(levels.tolist(), (weights.double() / n).tolist(), strict=True):
            p = min(1.0, share / share_left) if share_left > 0 else 1.0
            drawn = torch.binomial(left, torch.full_like(left, p), generator=g)
            total += level * drawn
            left -= drawn
            share_left -= share
        return total / n
    per_chunk = max(1, CHUNK_ELEMENTS // n)
    means = []
    for start in range(0, n_boot, per_chunk):
        rows = min(per_chunk, n_boot - start)
        idx = torch.randint(0, n, (rows, n), generator=g)
        means.append(x[idx].mean(dim=1))
    return torch.cat(means)


def _interval(samples: torch.Tensor, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    alpha = (1 - level) / 2
    low, high = torch.quantile(samples, torch.tensor([alpha, 1 - alpha], dtype=samples.dtype))
    return float(low), float(high)


def bootstrap_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values`` at ``level`` (deterministic for a seed)."""
    return _interval(resampled_means(values, n_boot, seed), level)


def paired_bootstrap(a, b, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean of ``a - b`` over paired values (the same annotations under two methods), its percentile bootstrap
    interval and two-sided p-value (twice the share of resampled differences on the far side of zero, at most 1;
    with 1,000 resamples the smallest is 0, read as p < 0.001). Mappings ``{split: values}`` with the same keys
    give the difference of the mean of split means, bootstrapped within each split."""
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)) or list(a) != list(b):
            raise ValueError(f"paired groups must have the same keys: {list(a)} against {list(b)}")
        diff = {k: _paired(a[k], b[k], f"group {k!r}") for k in a}
        mean, n = sum(float(d.mean()) for d in diff.values()) / len(diff), sum(d.numel() for d in diff.values())
    else:
        diff = _paired(a, b)
        mean, n = float(diff.mean()), diff.numel()
    samples = resampled_means(diff, n_boot, seed)
    low, high = _interval(samples, level)
    p = 2 * min(float((samples <= 0).double().mean()), float((samples >= 0).double().mean()))
    return {"diff": mean, "ci_low": low, "ci_high": high, "p_value": min(1.0, p), "n": n,
            "differs": not (low <= 0 <= high)}


def _paired(a, b, where: str = "") -> torch.Tensor:
    a, b = _values(a, f"a {where}".strip()), _values(b, f"b {where}".strip())
    if a.shape != b.shape:
        raise ValueError(f"paired values must match one for one{' in ' + where if where else ''}: "
                         f"{a.numel()} against {b.numel()}")
    return a - b
