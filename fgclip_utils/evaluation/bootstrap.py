"""How sure a number is: percentile bootstrap confidence intervals of a mean over annotations (or queries), and
the paired bootstrap of the difference between two methods measured on the same annotations.

Resamples are drawn with a seeded ``torch.Generator`` (the same seed gives the same interval) and evaluated in
chunks of resamples as one gather and mean each, so tens of thousands of values x 1,000 resamples take well
under a second on a CPU and bounded memory (``benchmarks/bench_bootstrap.py``).
"""
from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 22  # indices drawn at once (32 MiB of int64)


def _values(values, what: str = "values") -> torch.Tensor:
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    if x.numel() == 0:
        raise ValueError(f"{what} is empty: no interval can be given")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} holds a non-finite value")
    return x


def resampled_means(values, n_boot: int = 1000, seed: int = 0) -> torch.Tensor:
    """``n_boot`` means of ``values`` resampled with replacement (``(n_boot,)``, float64)."""
    x = _values(values)
    n = x.numel()
    g = torch.Generator().manual_seed(int(seed))
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
    with 1,000 resamples the smallest is 0, read as p < 0.001)."""
    a, b = _values(a, "a"), _values(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired values must match one for one: {a.numel()} against {b.numel()}")
    diff = a - b
    samples = resampled_means(diff, n_boot, seed)
    low, high = _interval(samples, level)
    p = 2 * min(float((samples <= 0).double().mean()), float((samples >= 0).double().mean()))
    return {"diff": float(diff.mean()), "ci_low": low, "ci_high": high, "p_value": min(1.0, p), "n": diff.numel(),
            "differs": not (low <= 0 <= high)}
