"""Bootstrap intervals: coverage on a known distribution, narrowing with n, determinism; the paired test finds a
planted difference and not a null one."""
import pytest
import torch

import fgclip_utils as fg
from fgclip_utils.evaluation.bootstrap import paired_bootstrap


def test_about_95_percent_of_intervals_contain_the_true_mean():
    g = torch.Generator().manual_seed(1)
    true_mean = 3.0  # ranks 1..5, uniform
    covered = 0
    for i in range(200):
        sample = torch.randint(1, 6, (200,), generator=g)
        low, high = fg.bootstrap_ci(sample, n_boot=1000, seed=i)
        covered += low <= true_mean <= high
    assert 0.90 <= covered / 200 <= 0.99, covered


def test_interval_narrows_with_n_and_is_deterministic():
    g = torch.Generator().manual_seed(2)
    widths = []
    for n in (100, 1000, 10000):
        low, high = fg.bootstrap_ci(torch.rand(n, generator=g), seed=0)
        widths.append(high - low)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]  # about 1 / sqrt(n)
    x = torch.rand(500, generator=g)
    assert fg.bootstrap_ci(x, seed=7) == fg.bootstrap_ci(x, seed=7) != fg.bootstrap_ci(x, seed=8)
    assert fg.bootstrap_ci([2.0] * 10) == (2.0, 2.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="empty"):
        fg.bootstrap_ci([])
    with pytest.raises(ValueError, match="non-finite"):
        fg.bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="level"):
        fg.bootstrap_ci([1.0, 2.0], level=95)


def test_paired_test_finds_a_planted_difference_and_not_a_null_one():
    g = torch.Generator().manual_seed(3)
    base = torch.randint(1, 11, (2000,), generator=g).double()
    better = (base - (torch.rand(2000, generator=g) < 0.2).double()).clamp(min=1)  # 1 rank better on 20% of rows
    planted = paired_bootstrap(better, base)
    assert planted["differs"] and planted["p_value"] < 0.01 and planted["ci_high"] < 0
    noise = base[torch.randperm(2000, generator=g)]  # same distribution, no pairing effect on the mean
    same = paired_bootstrap(base, base)
    assert not same["differs"] and same["p_value"] == 1.0 and same["diff"] == 0
    null = paired_bootstrap(noise, noise.flip(0))
    assert abs(null["diff"]) < 1e-12 and not null["differs"]
    with pytest.raises(ValueError, match="one for one"):
        paired_bootstrap([1.0, 2.0], [1.0])
