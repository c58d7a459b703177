import pytest
import torch

from fgclip_utils.data.fgovd import load_split
from fgclip_utils.evaluation.fine_grained import evaluate_split
from fgclip_utils.extraction.embedding_cache import SplitEmbeddings, embed_split
from fgclip_utils.heads.architectures import build_head
from fgclip_utils.heads.training import CoarsePairs, TrainConfig, merge_embeddings, train_head


@pytest.fixture(scope="module")
def data(tiny_clip, synth_bench, tmp_path_factory):
    paths, root = synth_bench
    cache = tmp_path_factory.mktemp("emb")
    parts = [embed_split(tiny_clip, load_split(paths[s], s), root, cache_dir=cache, progress=False)
             for s in ("hard", "medium", "color")]
    return merge_embeddings(parts), parts[0]


def test_merge_keeps_each_rows_captions(data, tiny_clip, synth_bench, tmp_path):
    merged, hard = data
    assert len(merged) == 3 * len(hard) and len(merged.captions) == len(set(merged.captions))
    for row in range(len(hard)):  # the first block is the hard split, remapped
        assert merged.captions[int(merged.positive[row])] == hard.captions[int(hard.positive[row])]
        assert torch.equal(merged.text[merged.positive[row]], hard.text[hard.positive[row]])
        got = [merged.captions[i] for i in merged.negatives[row] if i >= 0]
        assert got == [hard.captions[i] for i in hard.negatives[row] if i >= 0]


@pytest.mark.parametrize("loss", ["triplet", "infonce"])
def test_training_is_reproducible_and_checkpoint_round_trips(data, tmp_path, loss):
    train, val = data
    cfg = TrainConfig(loss=loss, epochs=3, batch_size=16, lr=5e-3, patience=10, seed=7)
    runs = [train_head(build_head("mlp", 64, seed=0), train, val, cfg, tmp_path / f"{i}.pt", device="cpu",
                       progress=False) for i in range(2)]
    assert runs[0].history["train_loss"].iloc[1:].tolist() == runs[1].history["train_loss"].iloc[1:].tolist()
    assert all(torch.equal(p, q) for p, q in zip(runs[0].head.parameters(), runs[1].head.parameters(), strict=True))
    # the saved checkpoint is a plain state dict that loads with weights_only=True into a fresh head
    fresh = build_head("mlp", 64)
    fresh.load_state_dict(torch.load(runs[0].checkpoint, weights_only=True))
    fresh.eval()
    assert evaluate_split(val, fresh.score).summary == evaluate_split(val, runs[0].head.score).summary
    assert runs[0].best_val_accuracy == pytest.approx(evaluate_split(val, fresh.score).summary["accuracy"])
    assert list(runs[0].history.columns) == ["epoch", "train_loss", "val_accuracy", "seconds"]


def test_training_improves_a_learnable_problem(tmp_path):
    """Image embeddings are a fixed rotation of their captions': cosine fails, a linear head learns it."""
    g = torch.Generator().manual_seed(0)
    d, n_cap = 16, 40
    text = torch.nn.functional.normalize(torch.randn(n_cap, d, generator=g), dim=-1)
    rot, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    positive = torch.arange(n_cap).repeat(4)
    negatives = torch.stack([torch.randperm(n_cap, generator=g)[:5] for _ in positive])
    clash = negatives == positive[:, None]
    negatives[clash] = (positive[:, None].expand_as(negatives)[clash] + 1) % n_cap
    noise = 0.05 * torch.randn(len(positive), d, generator=g)
    image = torch.nn.functional.normalize(text[positive] @ rot + noise, dim=-1)
    emb = SplitEmbeddings(image=image, text=text, captions=[str(i) for i in range(n_cap)], positive=positive,
                          negatives=negatives, annotation_ids=torch.arange(len(positive)))
    before = evaluate_split(emb).summary["accuracy"]
    res = train_head(build_head("linear-image", d), emb, emb, TrainConfig(epochs=60, lr=2e-2, batch_size=32,
                     patience=60), tmp_path / "h.pt", device="cpu", progress=False)
    assert before < 0.4 and res.best_val_accuracy > 0.9
    assert res.history["val_accuracy"].iloc[0] == pytest.approx(before)


def test_early_stopping_and_coarse_term(data, tmp_path):
    train, val = data
    coarse = CoarsePairs(image=train.image[:32], text=train.text[train.positive[:32]])
    res = train_head(build_head("linear", 64), train, val,
                     TrainConfig(epochs=50, lr=1e-7, patience=2, coarse_weight=0.5), tmp_path / "c.pt",
                     device="cpu", coarse=coarse, progress=False)
    assert len(res.history) - 1 < 50  # stopped early: a tiny learning rate cannot improve validation
    assert res.history["train_loss"].iloc[1:].notna().all()


def test_config_rejects_unknown_loss():
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="hinge")
