import math

import pytest
import torch

from fgclip_utils.evaluation.ranking import (
    PAPER_N,
    chance_mean_rank,
    fixed_n_ranks,
    paper_aggregate,
    rank_positive,
    summarize,
)
from fgclip_utils.evaluation.retrieval import recall_at_k


def test_rank_positive_counts_ties_against_the_positive():
    scores = torch.tensor([[0.9, 0.1, 0.2],   # clear win
                           [0.5, 0.5, 0.1],   # tie -> rank 2
                           [0.1, 0.3, 0.2],   # last
                           [0.4, 0.4, 0.4]])  # all equal -> last
    assert rank_positive(scores).tolist() == [1, 2, 3, 3]


def test_padding_with_minus_inf_never_counts():
    inf = float("-inf")
    scores = torch.tensor([[0.2, 0.3, inf, inf], [0.2, inf, inf, inf]])
    assert rank_positive(scores).tolist() == [2, 1]


def test_rank_positive_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        rank_positive(torch.zeros(3))


def test_summarize_hand_computed():
    s = summarize([1, 2, 4, 1])
    assert s["accuracy"] == 0.5 and s["mean_rank"] == 2.0 and s["n"] == 4
    assert s["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 1) / 4)
    assert math.isnan(summarize([])["accuracy"]) and summarize([])["n"] == 0
    with pytest.raises(ValueError):
        summarize([0, 1])


def test_recall_at_k_hand_computed():
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.9], [0.5, 0.5, 0.1]])
    rel = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.bool)
    # query 0 rank 1; query 1 rank 3; query 2 ties with an irrelevant item -> rank 2 (pessimistic)
    r = recall_at_k(sim, rel, ks=(1, 2, 3))
    assert r == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: 1.0}
    with pytest.raises(ValueError, match="relevant"):
        recall_at_k(sim, torch.zeros(3, 3, dtype=torch.bool))


def test_a_nan_score_ranks_the_positive_last_never_first():
    nan, inf = float("nan"), float("-inf")
    scores = torch.tensor([[nan, 0.1, 0.2, inf],   # positive NaN: last among 1 + 2 present
                           [0.9, nan, 0.1, 0.2],   # a NaN negative: last among 1 + 3
                           [0.9, 0.1, inf, inf]])  # no NaN: ranked as usual
    assert rank_positive(scores).tolist() == [3, 4, 1]


def test_fixed_n_ranks_hand_computed():
    inf, nan = float("-inf"), float("nan")
    scores = torch.tensor([
        [0.5, 0.1, 0.6, 0.7, 0.9],    # 4 negatives; against the first 2: 0.1 < 0.5 <= 0.6 -> rank 2
        [0.5, 0.5, 0.1, inf, inf],    # 2 negatives: a tie with the first counts against -> rank 2
        [0.5, 0.9, inf, inf, inf],    # 1 negative: fewer than n = 2, left out
        [0.5, 0.1, 0.2, 0.9, inf],    # 3 negatives, the winner is the 3rd: not among the first 2 -> rank 1
        [nan, 0.1, 0.2, inf, inf],    # NaN: last, 1 + 2
    ])
    ranks, kept = fixed_n_ranks(scores, 2)
    assert kept.tolist() == [True, True, False, True, True]
    assert ranks.tolist() == [2, 2, 1, 3]
    ranks, kept = fixed_n_ranks(scores, 4)
    assert kept.tolist() == [True, False, False, False, False] and ranks.tolist() == [4]
    ranks, kept = fixed_n_ranks(scores[:, :2], 2)  # no row has 2 columns of negatives
    assert not kept.any() and ranks.numel() == 0
    with pytest.raises(ValueError, match="at least 1"):
        fixed_n_ranks(scores, 0)


def test_paper_n_and_aggregates():
    assert PAPER_N == {"trivial": 10, "easy": 10, "medium": 10, "hard": 10, "color": 10, "material": 10,
                       "pattern": 7, "transparency": 2}
    assert chance_mean_rank(10) == 6.0 and chance_mean_rank(2) == 2.0
    ranks = dict(zip(PAPER_N, [1.0, 2.0, 3.0, 4.0, 1.5, 2.5, 3.5, 1.25], strict=True))
    agg = paper_aggregate(ranks)
    assert agg["mean_rank_sum"] == pytest.approx(18.75) and agg["fgovd_mean_rank"] == pytest.approx(18.75 / 8)
    assert math.isnan(paper_aggregate({k: v for k, v in ranks.items() if k != "hard"})["mean_rank_sum"])


def test_as_run_cosine_ties_near_equal_scores_and_the_ties_are_counted():
    import torch

    from fgclip_utils.evaluation.fine_grained import evaluate_split
    from fgclip_utils.evaluation.similarity import as_run_cosine, cosine
    from fgclip_utils.extraction.embedding_cache import SplitEmbeddings

    text = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 1e-2]]), dim=-1)  # nearly the same
    image = torch.tensor([[1.0, 0.0]])
    emb = SplitEmbeddings(image=image, text=text, captions=["a red mug", "a red mug."],
                          positive=torch.tensor([0]), negatives=torch.tensor([[1]]), annotation_ids=torch.tensor([1]),
                          meta={"split": "hard"})
    exact, as_run = (evaluate_split(emb, s, n_negatives=1).summary for s in (cosine, as_run_cosine))
    assert exact["accuracy"] == 1.0 and exact["ties_with_positive"] == 0
    assert as_run["accuracy"] == 0.0 and as_run["ties_with_positive"] == 1  # the tie counts against the positive
