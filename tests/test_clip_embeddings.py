import json
import shutil

import pytest
import torch

from fgclip_utils.data.fgovd import load_split
from fgclip_utils.evaluation.fine_grained import candidate_scores, evaluate_split, evaluate_splits
from fgclip_utils.extraction.clip_models import TINY_MODEL, load_clip
from fgclip_utils.extraction.embedding_cache import embed_split, encode_texts


def test_tiny_model_is_seeded_frozen_and_normalised(tiny_clip):
    again = load_clip(TINY_MODEL, device="cpu", seed=0)
    other = load_clip(TINY_MODEL, device="cpu", seed=1)
    a, b, c = (encode_texts(m, ["a red star", "a blue circle"], progress=False) for m in (tiny_clip, again, other))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert torch.allclose(a.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not any(p.requires_grad for p in tiny_clip.model.parameters()) and not tiny_clip.model.training
    assert tiny_clip.weights_id == "random:0" and tiny_clip.embed_dim == 64


def test_local_weights_file_is_accepted_and_identified_by_content(tiny_clip, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(load_clip(TINY_MODEL, device="cpu", seed=7).model.state_dict(), path)
    from_file = load_clip(TINY_MODEL, str(path), device="cpu", seed=0)
    assert from_file.weights_id.startswith("file:")
    seeded7 = load_clip(TINY_MODEL, device="cpu", seed=7)
    texts = ["a small green dotted star"]
    assert torch.allclose(encode_texts(from_file, texts, progress=False), encode_texts(seeded7, texts, progress=False))


def test_unknown_model_or_tag_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown open_clip model"):
        load_clip("ViT-Nope", device="cpu")
    with pytest.raises(ValueError, match="neither a local weights file nor a pretrained tag"):
        load_clip("ViT-B-16", "no-such-tag", device="cpu")


def test_embed_split_shapes_dedup_and_cache(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    split = load_split(paths["hard"], "hard")
    emb = embed_split(tiny_clip, split, root, cache_dir=tmp_path, progress=False)
    captions = {c for a in split.annotations for c in (a.positive, *a.negatives)}
    assert emb.meta["from_cache"] is False
    assert len(emb) == len(split) and emb.image.shape == (len(split), 64)
    assert sorted(emb.captions) == sorted(captions) and emb.text.shape[0] == len(captions)  # each caption once
    by_id = {a.id: a for a in split.annotations}
    for row in range(len(emb)):
        ann = by_id[int(emb.annotation_ids[row])]
        assert emb.captions[int(emb.positive[row])] == ann.positive
        assert [emb.captions[i] for i in emb.negatives[row] if i >= 0] == ann.negatives

    again = embed_split(tiny_clip, split, root, cache_dir=tmp_path, progress=False)
    assert again.meta["from_cache"] is True and torch.equal(again.image, emb.image)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    # any change of input is a new entry, never a stale hit
    embed_split(tiny_clip, split, root, cache_dir=tmp_path, scale_factor=1.5, progress=False)
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_cache_key_follows_split_content_and_available_images(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    copy = tmp_path / "hard.json"
    shutil.copy(paths["hard"], copy)
    split = load_split(copy, "hard")
    full = embed_split(tiny_clip, split, root, cache_dir=tmp_path / "c", progress=False)
    partial = embed_split(tiny_clip, split, root, cache_dir=tmp_path / "c", available={1, 2}, progress=False)
    assert not partial.meta["from_cache"] and partial.n_missing_images == len(split) - len(partial) > 0
    data = json.loads(copy.read_text())
    data["annotations"] = data["annotations"][:5]
    copy.write_text(json.dumps(data))
    edited = embed_split(tiny_clip, load_split(copy, "hard"), root, cache_dir=tmp_path / "c", progress=False)
    assert not edited.meta["from_cache"] and len(edited) == 5 and len(full) == 24


def test_a_corrupt_cache_entry_is_recomputed(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    split = load_split(paths["color"], "color")
    first = embed_split(tiny_clip, split, root, cache_dir=tmp_path, progress=False)
    entry = next(tmp_path.glob("*.pt"))
    entry.write_bytes(b"garbage")
    second = embed_split(tiny_clip, split, root, cache_dir=tmp_path, progress=False)
    assert second.meta["from_cache"] is False and torch.allclose(second.image, first.image)
    assert embed_split(tiny_clip, split, root, cache_dir=tmp_path, progress=False).meta["from_cache"]


def test_evaluation_ranks_with_a_known_similarity(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    emb = embed_split(tiny_clip, load_split(paths["pattern"], "pattern"), root, cache_dir=tmp_path, progress=False)
    # an oracle that knows the positive: every row ranks first
    emb_oracle = type(emb)(**{**emb.to_dict(), "image": emb.text[emb.positive].clone()})
    res = evaluate_split(emb_oracle)
    assert res.summary["accuracy"] == 1.0 and res.summary["mrr"] == 1.0
    assert res.summary["chance"] == pytest.approx(1 / 4)
    # a constant similarity ties everything: the positive ranks last
    const = evaluate_split(emb, similarity=lambda i, t: torch.zeros(len(i)))
    assert const.summary["accuracy"] == 0.0 and const.summary["mean_rank"] == 4.0
    scores = candidate_scores(emb)
    assert scores.shape == (len(emb), 4) and torch.isfinite(scores).all()
    table = evaluate_splits({"pattern": emb}, method="m")
    assert table.loc[0, "n"] + table.loc[0, "skipped"] + table.loc[0, "missing_images"] == 24


def test_rows_without_negatives_are_skipped_not_ranked(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    data = json.loads(paths["transparency"].read_text())
    for ann in data["annotations"][:4]:
        ann["neg_category_ids"] = []
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    emb = embed_split(tiny_clip, load_split(path, "transparency"), root, cache_dir=tmp_path, progress=False)
    row = evaluate_splits({"transparency": emb}).iloc[0]
    assert row["skipped"] == 4 and row["n"] == 20


def test_fresh_embeddings_can_feed_training(tiny_clip, synth_bench, tmp_path):
    """Freshly computed (not cached) embeddings are ordinary tensors that autograd accepts."""
    paths, root = synth_bench
    emb = embed_split(tiny_clip, load_split(paths["hard"], "hard"), root, cache_dir=tmp_path, progress=False)
    assert emb.meta["from_cache"] is False and not emb.image.is_inference()
    layer = torch.nn.Linear(64, 64)
    layer(emb.image).sum().backward()
    assert layer.weight.grad is not None
