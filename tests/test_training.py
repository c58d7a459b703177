from dataclasses import replace

import pytest
import torch
from split_embedding import embed_one_split

from fgclip_utils.data.fgovd import load_split
from fgclip_utils.evaluation.fine_grained import evaluate_split
from fgclip_utils.extraction.embedding_cache import SplitEmbeddings
from fgclip_utils.heads.architectures import build_head
from fgclip_utils.heads.training import CoarsePairs, TrainConfig, merge_embeddings, train_head


@pytest.fixture(scope="module")
def data(tiny_clip, synth_bench, tmp_path_factory):
    paths, root = synth_bench
    cache = tmp_path_factory.mktemp("emb")
    parts = [embed_one_split(tiny_clip, load_split(paths[s], s), root, cache_dir=cache, progress=False)
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


def test_a_diverging_head_stops_with_a_clear_error_and_saves_nothing(data, tmp_path):
    from fgclip_utils.heads.training import TrainingDiverged

    train, val = data
    with pytest.raises(TrainingDiverged, match="training loss went non-finite at epoch 1"):
        train_head(build_head("linear", 64), train, val, TrainConfig(epochs=3, lr=1e30, batch_size=16),
                   tmp_path / "nan.pt", device="cpu", progress=False)
    assert not (tmp_path / "nan.pt").exists()
    head = build_head("linear", 64)
    with torch.no_grad():
        head.image_map.weight.fill_(float("nan"))  # a head that scores NaN from the start
    with pytest.raises(TrainingDiverged, match="validation score went non-finite at epoch 0"):
        train_head(head, train, val, TrainConfig(epochs=1), tmp_path / "nan2.pt", device="cpu", progress=False)


def test_study_checkpoints_are_keyed_by_what_made_them(cache_dir, tiny_clip):
    import warnings

    from fgclip_utils.heads.study_recipe import checkpoint_path, load_or_train_head, study_head_key, training_data
    from fgclip_utils.profiles import get_profile

    P = get_profile("smoke")
    P = replace(P, data=replace(P.data, n_objects=24, n_train_objects=40),
                train=replace(P.train, epochs=2, batch_size=16))
    head, result = load_or_train_head(P, tiny_clip, "linear", "triplet")
    assert result is not None and result.checkpoint.exists()
    again, second = load_or_train_head(P, tiny_clip, "linear", "triplet")
    assert second is None and all(torch.equal(a, b) for a, b in zip(head.state_dict().values(),
                                                                     again.state_dict().values(), strict=True))
    # another setting (here the learning rate; the scale factor changes the data keys alike): a new head
    _, third = load_or_train_head(P, tiny_clip, "linear", "triplet", lr=1e-4)
    assert third is not None and third.checkpoint != result.checkpoint
    train, val = training_data(replace(P, extract=replace(P.extract, scale_factor=1.5)), tiny_clip, progress=False)
    key = study_head_key("linear", P.train_config("triplet"), train, val)
    assert checkpoint_path(P, tiny_clip, "linear", "triplet", key) != result.checkpoint
    # a damaged checkpoint is named, not loaded, and trained again
    result.checkpoint.write_bytes(b"\\x00" * 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, fourth = load_or_train_head(P, tiny_clip, "linear", "triplet")
    assert fourth is not None and any(str(result.checkpoint) in str(w.message) and "damaged" in str(w.message)
                                      for w in caught)


def test_load_head_state_names_the_file(tmp_path):
    from fgclip_utils.heads.checkpoints import CheckpointError, load_head_state, save_head

    head = build_head("linear", 8)
    path = save_head(tmp_path / "h.pt", head, "k1")
    assert load_head_state(path, build_head("linear", 8), "k1").kind == "linear"
    with pytest.raises(CheckpointError, match="h.pt: made from other inputs"):
        load_head_state(path, build_head("linear", 8), "k2")
    with pytest.raises(CheckpointError, match="h.pt: does not fit a mlp head"):
        load_head_state(path, build_head("mlp", 8), "k1")
    (tmp_path / "bare.pt").write_bytes(path.read_bytes())
    with pytest.raises(CheckpointError, match="bare.pt: no readable bare.pt.json beside it"):
        load_head_state(tmp_path / "bare.pt", build_head("linear", 8))


def test_the_coarse_pairs_are_part_of_a_study_heads_key(data):
    from fgclip_utils.heads.study_recipe import study_head_key
    from fgclip_utils.profiles import get_profile

    train, val = data
    cfg = get_profile("smoke").train_config("triplet")
    pairs = CoarsePairs(image=train.image[:4], text=train.text[:4], key="a")
    other = CoarsePairs(image=train.image[:4], text=train.text[:4], key="b")
    plain = study_head_key("linear", cfg, train, val)
    assert study_head_key("linear", cfg, train, val, pairs) == plain  # no coarse term: the pairs are not used
    weighted = replace(cfg, coarse_weight=0.5)
    assert study_head_key("linear", weighted, train, val, pairs) != study_head_key("linear", weighted, train, val,
                                                                                   other)


def test_the_training_estimate_times_a_real_step_and_leaves_every_state_as_it_was(capsys):
    from fgclip_utils.extraction.cost_estimate import say_training_estimate, step_flops, step_seconds, training_estimate

    head = build_head("mlp", 32, seed=0)  # has dropout: a step in training mode must not move the global RNG
    g = torch.Generator().manual_seed(5)
    image, text = torch.randn(200, 32), torch.randn(50, 32)

    def step(idx):  # draws from ``g`` as the study's coarse pairs do
        return head.score(image[idx], text[torch.randint(50, (len(idx),), generator=g)]).sum()

    head.eval()
    state, g_state, rng = {k: v.clone() for k, v in head.state_dict().items()}, g.get_state(), torch.get_rng_state()
    seconds, how = training_estimate(head, step, 1000, 64, 3, "cpu", n_val=100, generator=g)
    assert step_seconds(head, step, 64, "cpu", g) > 0
    assert torch.equal(g.get_state(), g_state) and torch.equal(torch.get_rng_state(), rng) and not head.training
    assert all(p.grad is None for p in head.parameters())
    assert all(torch.equal(v, state[k]) for k, v in head.state_dict().items())
    forward = step_flops(head, step, 64, "cpu", g)
    assert forward >= 2 * 64 * 32 * 32  # at least one d x d product per row
    assert seconds > 0 and f"{3 * forward / 1e9:.3g} GFLOP in its matrix products" in how
    assert how.startswith("one step measured here at ")
    again = say_training_estimate(head, step, 1000, 64, 3, "cpu", "mlp/triplet", n_val=100, early_stopping=True)
    assert again > 0
    assert "mlp/triplet: at most 3 epochs of 16 steps (1,000 rows, batch 64), about " in capsys.readouterr().out
