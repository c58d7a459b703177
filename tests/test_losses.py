import math

import pytest
import torch

from fgclip_utils.heads.losses import clip_loss, infonce_loss, triplet_loss


def test_triplet_sum_and_max_hand_computed():
    pos = torch.tensor([0.5, 0.2])
    neg = torch.tensor([[0.4, 0.6, 0.0], [0.1, 0.3, 9.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    # row 0 hinges (margin .2): .1, .3, 0 -> sum .4, max .3 ; row 1: .1, .3, (masked) -> sum .4, max .3
    assert triplet_loss(pos, neg, mask, 0.2, "sum").item() == pytest.approx(0.4)
    assert triplet_loss(pos, neg, mask, 0.2, "max").item() == pytest.approx(0.3)


def test_triplet_ignores_rows_without_negatives_and_bad_mode():
    pos, neg = torch.tensor([0.0, 0.0]), torch.tensor([[1.0], [5.0]])
    mask = torch.tensor([[True], [False]])
    assert triplet_loss(pos, neg, mask, 0.0).item() == pytest.approx(1.0)
    assert triplet_loss(pos, neg, torch.zeros_like(mask), 0.0).item() == 0.0
    with pytest.raises(ValueError):
        triplet_loss(pos, neg, mask, violation="mean")


def test_infonce_hand_computed():
    in_batch = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    neg = torch.tensor([[0.0], [1.0]])
    mask = torch.tensor([[True], [False]])
    # temperature 1: row 0 logits [1, 0, 0] target 0; row 1 logits [.5, 2] (+ masked) target 1
    expected = (-(1 - math.log(math.e + 2)) - (2 - math.log(math.exp(0.5) + math.exp(2)))) / 2
    assert infonce_loss(in_batch, neg, mask, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_infonce_drops_in_batch_entries_that_share_the_caption():
    in_batch = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    neg, mask = torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.bool)
    same = torch.ones(2, 2, dtype=torch.bool)
    assert infonce_loss(in_batch, neg, mask, 1.0, same).item() == pytest.approx(0.0, abs=1e-7)
    assert infonce_loss(in_batch, neg, mask, 1.0).item() == pytest.approx(math.log(2))


def test_clip_loss_hand_computed():
    sim = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = -(1 - math.log(math.e + 1))
    assert clip_loss(sim, 1.0).item() == pytest.approx(expected)


def test_the_papers_warmup_hinge_hand_computed():
    from fgclip_utils.heads.losses import warmup_hinge

    s = torch.tensor([[0.9, 0.8], [0.1, 0.5]])  # rows images, columns captions, diagonal the true pairs
    # caption retrieval (row i vs s_ii): (0,1): .2 + .8 - .9 = .1; (1,0): .2 + .1 - .5 = -.2 -> 0
    # image retrieval (column j vs s_jj): (0,1): .2 + .8 - .5 = .5; (1,0): .2 + .1 - .9 -> 0
    assert warmup_hinge(s, 0.2).item() == pytest.approx(0.6)
    assert warmup_hinge(torch.eye(3), 0.2).item() == 0.0  # margins met everywhere
    assert warmup_hinge(torch.zeros(3, 3), 0.2).item() == pytest.approx(0.2 * 6 * 2)  # summed, not averaged


def test_the_papers_anchored_hinge_hand_computed():
    from fgclip_utils.heads.losses import anchored_hinge

    s = torch.tensor([[0.50, 0.47, 0.40, 0.60], [0.9, 0.1, 0.2, 0.3]])
    # row 0: .05 + .47 - .5 = .02, .05 + .40 - .5 -> 0, .05 + .60 - .5 = .15; row 1: all 0
    assert anchored_hinge(s, 0.05).item() == pytest.approx(0.17)
    assert anchored_hinge(torch.zeros(4, 11), 0.05).item() == pytest.approx(0.05 * 4 * 10)
