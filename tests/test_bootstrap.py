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


def test_an_aggregate_over_splits_is_bootstrapped_within_each_split():
    g = torch.Generator().manual_seed(4)
    # Table B's measure is the mean of split means: a small split weighs as much as a large one
    groups = {"small": 5 + torch.rand(50, generator=g), "large": 1 + torch.rand(5000, generator=g)}
    low, high = fg.bootstrap_ci(groups)
    mean_of_means = (groups["small"].mean() + groups["large"].mean()).item() / 2
    pooled = torch.cat(list(groups.values())).mean().item()
    assert low < mean_of_means < high and not low < pooled < high
    # the spread comes from the small split: its own interval, halved, is about the aggregate's
    small_low, small_high = fg.bootstrap_ci(groups["small"])
    assert (high - low) == pytest.approx((small_high - small_low) / 2, rel=0.25)
    assert fg.bootstrap_ci(groups, seed=3) == fg.bootstrap_ci(groups, seed=3)


def test_the_paired_test_over_splits_finds_a_planted_difference_and_not_a_null_one():
    g = torch.Generator().manual_seed(5)
    base = {s: torch.randint(1, 11, (n,), generator=g).double() for s, n in (("a", 300), ("b", 40))}
    better = {s: (v - (torch.rand(len(v), generator=g) < 0.3).double()).clamp(min=1) for s, v in base.items()}
    planted = paired_bootstrap(better, base)
    expected = sum((better[s] - base[s]).mean().item() for s in base) / 2
    assert planted["diff"] == pytest.approx(expected) and planted["differs"] and planted["ci_high"] < 0
    assert planted["n"] == 340
    null = paired_bootstrap(base, base)
    assert null["diff"] == 0 and not null["differs"]
    with pytest.raises(ValueError, match="same keys"):
        paired_bootstrap(base, {"a": base["a"]})
    with pytest.raises(ValueError, match="one for one in group 'b'"):
        paired_bootstrap(base, {"a": base["a"], "b": base["b"][:3]})


@pytest.mark.parametrize("kind", ["hits", "ranks", "paired differences"])
def test_values_with_few_levels_are_resampled_like_any_mean(kind):
    # ranks, their differences and 0/1 hits are drawn as multinomial counts of their levels: the resampled means
    # have the distribution plain resampling gives
    from fgclip_utils.evaluation.bootstrap import resampled_means

    g = torch.Generator().manual_seed(6)
    x = {"hits": (torch.rand(3000, generator=g) < 0.3).double(),
         "ranks": torch.randint(1, 12, (3000,), generator=g).double(),
         "paired differences": (torch.randint(1, 12, (3000,), generator=g)
                                - torch.randint(1, 12, (3000,), generator=g)).double()}[kind]
    fast = resampled_means(x, 4000, seed=0)
    slow = torch.stack([x[torch.randint(0, 3000, (3000,), generator=g)].mean() for _ in range(2000)])
    assert fast.mean().item() == pytest.approx(x.mean().item(), abs=0.1 * x.std().item() / 3000 ** 0.5 * 10)
    assert fast.std().item() == pytest.approx(slow.std().item(), rel=0.1)
    assert fast.std().item() == pytest.approx(x.std().item() / 3000 ** 0.5, rel=0.1)


def test_a_share_of_hits_has_the_binomial_interval():
    g = torch.Generator().manual_seed(6)
    hits = (torch.rand(3000, generator=g) < 0.3).double()
    low, high = fg.bootstrap_ci(hits)
    assert low < hits.mean().item() < high and high - low == pytest.approx(2 * 1.96 * (0.3 * 0.7 / 3000) ** 0.5,
                                                                          rel=0.15)
