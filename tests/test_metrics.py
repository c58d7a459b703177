import math

import pytest
import torch

from fgclip_utils.evaluation.ranking import rank_positive, summarize
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
