import contextlib
import json
import shutil

import pytest
import torch
from split_embedding import embed_loaded_splits, embed_one_split

from fgclip_utils.data.fgovd import load_split
from fgclip_utils.evaluation.fine_grained import candidate_scores, evaluate_split, evaluate_splits
from fgclip_utils.extraction.clip_forward import encode_texts
from fgclip_utils.extraction.clip_models import TINY_MODEL, load_clip


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


def test_unknown_model_or_tag_is_a_clear_error_with_close_matches():
    with pytest.raises(ValueError, match=r"unknown open_clip model 'ViT-B-61'; close matches: \['ViT-B-16'"):
        load_clip("ViT-B-61", device="cpu")
    with pytest.raises(ValueError,
                       match=r"neither a local weights file nor a pretrained tag.*close matches: \['openai'\]"):
        load_clip("ViT-B-16", "opneai", device="cpu")
    with pytest.raises(ValueError, match="brings its own weights"):
        load_clip("hf-hub:timm/ViT-B-16-SigLIP", "webli", device="cpu")
    with pytest.raises(ValueError, match="no such folder"):
        load_clip("local-dir:/no/such/folder", device="cpu")


def test_openai_weights_get_quick_gelu():
    import open_clip

    from fgclip_utils.extraction.clip_models import tag_wants_quick_gelu, uses_quick_gelu

    # every openai tag's config says quick_gelu, and the plain ViT-B-16 config does not: loading the tag alone
    # builds GELU (open_clip only warns), so load_clip must force it
    assert tag_wants_quick_gelu("ViT-B-16", "openai") and tag_wants_quick_gelu("ViT-L-14", "openai")
    assert not tag_wants_quick_gelu("ViT-B-16", "laion2b_s34b_b88k")
    assert not open_clip.get_model_config("ViT-B-16").get("quick_gelu", False)
    assert not uses_quick_gelu(open_clip.create_model("ViT-B-16"))


def test_a_quick_gelu_tag_builds_quick_gelu_end_to_end(tmp_path, monkeypatch):
    """A registered tag whose config says quick_gelu (standing in for openai; a saved random state dict stands
    in for the download) gives a QuickGELU model whose embeddings differ from the GELU build."""
    import open_clip

    from fgclip_utils.extraction.clip_models import uses_quick_gelu

    weights = tmp_path / "tiny-openai-like.pt"
    torch.save(load_clip(TINY_MODEL, device="cpu", seed=3).model.state_dict(), weights)
    tags = {"openailike": open_clip.pretrained._pcfg(quick_gelu=True), "geluonly": open_clip.pretrained._pcfg()}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_MODEL, tags)
    monkeypatch.setattr(open_clip.factory, "download_pretrained", lambda cfg, cache_dir=None: str(weights))
    quick = load_clip(TINY_MODEL, "openailike", device="cpu")
    gelu = load_clip(TINY_MODEL, "geluonly", device="cpu")
    assert quick.quick_gelu and uses_quick_gelu(quick.model) and not gelu.quick_gelu
    texts = ["a small red striped translucent star"]
    assert not torch.allclose(encode_texts(quick, texts, progress=False), encode_texts(gelu, texts, progress=False))
    # the same weights as a local file: GELU unless asked, QuickGELU when asked
    assert not load_clip(TINY_MODEL, str(weights), device="cpu").quick_gelu
    from_file = load_clip(TINY_MODEL, str(weights), device="cpu", quick_gelu=True)
    assert from_file.quick_gelu and torch.allclose(encode_texts(from_file, texts, progress=False),
                                                   encode_texts(quick, texts, progress=False))


def test_a_local_file_that_looks_like_openai_weights_warns(tmp_path):
    state = load_clip(TINY_MODEL, device="cpu").model.state_dict()
    path = tmp_path / "looks-openai.pt"
    torch.save({**state, "input_resolution": torch.tensor(64), "context_length": torch.tensor(77)}, path)
    from fgclip_utils.extraction.clip_models import looks_like_openai_weights
    assert looks_like_openai_weights(path)
    plain = tmp_path / "plain.pt"
    torch.save(state, plain)
    assert not looks_like_openai_weights(plain)
    # the extra entries do not load into the model (RuntimeError); the warning came first
    with pytest.warns(UserWarning, match="looks like OpenAI CLIP weights.*quick_gelu=True"), \
            contextlib.suppress(RuntimeError):
        load_clip(TINY_MODEL, str(path), device="cpu")


def test_a_local_dir_backbone_loads_its_config_and_weights(tmp_path):
    import open_clip

    folder = tmp_path / "tiny-dir"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": open_clip.get_model_config(TINY_MODEL),
                                                              "preprocess_cfg": {}}))
    torch.save(load_clip(TINY_MODEL, device="cpu", seed=9).model.state_dict(), folder / "open_clip_pytorch_model.bin")
    bundle = load_clip(f"local-dir:{folder}", device="cpu")
    assert bundle.embed_dim == 64 and bundle.weights_id == f"local-dir:{folder}"
    assert bundle.label.startswith("local-dir:")
    texts = ["a blue star"]
    assert torch.allclose(encode_texts(bundle, texts, progress=False),
                          encode_texts(load_clip(TINY_MODEL, device="cpu", seed=9), texts, progress=False), atol=1e-6)


def test_a_tokenizer_that_needs_an_extra_says_which(monkeypatch):
    import builtins
    import sys

    from fgclip_utils.extraction.clip_models import _tokenizer

    real = builtins.__import__

    def without_transformers(name, *args, **kwargs):  # the test extra installs transformers: hide it
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("No module named 'transformers'", name="transformers")
        return real(name, *args, **kwargs)

    for module in [m for m in sys.modules if m == "transformers" or m.startswith("transformers.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", without_transformers)
    with pytest.raises(ImportError, match=r"install the 'siglip' extra"):
        _tokenizer("ViT-B-16-SigLIP")


def test_embed_split_shapes_dedup_and_cache(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    split = load_split(paths["hard"], "hard")
    emb = embed_one_split(tiny_clip, split, root, cache_dir=tmp_path, progress=False)
    captions = {c for a in split.annotations for c in (a.positive, *a.negatives)}
    assert emb.meta["from_cache"] is False
    assert len(emb) == len(split) and emb.image.shape == (len(split), 64)
    assert sorted(emb.captions) == sorted(captions) and emb.text.shape[0] == len(captions)  # each caption once
    by_id = {a.id: a for a in split.annotations}
    for row in range(len(emb)):
        ann = by_id[int(emb.annotation_ids[row])]
        assert emb.captions[int(emb.positive[row])] == ann.positive
        assert [emb.captions[i] for i in emb.negatives[row] if i >= 0] == ann.negatives

    again = embed_one_split(tiny_clip, split, root, cache_dir=tmp_path, progress=False)
    assert again.meta["from_cache"] is True and torch.equal(again.image, emb.image)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    # any change of input is a new entry, never a stale hit
    embed_one_split(tiny_clip, split, root, cache_dir=tmp_path, scale_factor=1.5, progress=False)
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_cache_key_follows_split_content_and_available_images(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    copy = tmp_path / "hard.json"
    shutil.copy(paths["hard"], copy)
    split = load_split(copy, "hard")
    full = embed_one_split(tiny_clip, split, root, cache_dir=tmp_path / "c", progress=False)
    partial = embed_one_split(tiny_clip, split, root, cache_dir=tmp_path / "c", available={1, 2}, progress=False)
    assert not partial.meta["from_cache"] and partial.n_missing_images == len(split) - len(partial) > 0
    data = json.loads(copy.read_text())
    data["annotations"] = data["annotations"][:5]
    copy.write_text(json.dumps(data))
    edited = embed_one_split(tiny_clip, load_split(copy, "hard"), root, cache_dir=tmp_path / "c", progress=False)
    assert not edited.meta["from_cache"] and len(edited) == 5 and len(full) == 24


def test_a_corrupt_cache_entry_is_recomputed(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    split = load_split(paths["color"], "color")
    first = embed_one_split(tiny_clip, split, root, cache_dir=tmp_path, progress=False)
    entry = next(tmp_path.glob("*.pt"))
    entry.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="cache entry cannot be read"):
        second = embed_one_split(tiny_clip, split, root, cache_dir=tmp_path, progress=False)
    assert second.meta["from_cache"] is False and torch.allclose(second.image, first.image)
    assert embed_one_split(tiny_clip, split, root, cache_dir=tmp_path, progress=False).meta["from_cache"]


def test_flipped_bytes_foreign_entries_and_bad_shapes_are_never_used(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    color = load_split(paths["color"], "color")
    first = embed_one_split(tiny_clip, color, root, cache_dir=tmp_path, progress=False)
    entry = next(tmp_path.glob("*color*.pt"))
    raw = bytearray(entry.read_bytes())
    start = raw.index(first.image[5].numpy().tobytes())  # inside the stored crop embeddings
    raw[start:start + 64] = bytes(64)
    entry.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="does not match its checksum"):
        again = embed_one_split(tiny_clip, color, root, cache_dir=tmp_path, progress=False)
    assert not again.meta["from_cache"] and torch.equal(again.image, first.image)

    pattern = load_split(paths["pattern"], "pattern")
    other = embed_one_split(tiny_clip, pattern, root, cache_dir=tmp_path, progress=False)
    pattern_entry = next(tmp_path.glob("*pattern*.pt"))
    entry.write_bytes(pattern_entry.read_bytes())  # an entry of another split under this one's name
    with pytest.warns(UserWarning, match="made from other inputs"):
        again = embed_one_split(tiny_clip, color, root, cache_dir=tmp_path, progress=False)
    assert not again.meta["from_cache"] and len(again.captions) != len(other.captions)

    from fgclip_utils.extraction.cache_entries import write_entry
    data = torch.load(entry, weights_only=True)
    key = data.pop("key")
    data.pop("checksum")
    data["image"] = data["image"][:-1]  # one row short, checksum made to match
    write_entry(entry, data, key)
    with pytest.warns(UserWarning, match="'image' has shape"):
        assert not embed_one_split(tiny_clip, color, root, cache_dir=tmp_path, progress=False).meta["from_cache"]
    data["image"] = torch.full_like(first.image, float("nan"))
    write_entry(entry, data, key)
    with pytest.warns(UserWarning, match="non-finite"):
        assert not embed_one_split(tiny_clip, color, root, cache_dir=tmp_path, progress=False).meta["from_cache"]


def test_changed_image_files_make_a_new_entry(tiny_clip, synth_bench, tmp_path):
    import shutil

    from PIL import Image

    paths, root = synth_bench
    images = tmp_path / "images"
    shutil.copytree(root, images)
    split = load_split(paths["hard"], "hard")
    first = embed_one_split(tiny_clip, split, images, cache_dir=tmp_path / "c", progress=False)
    assert embed_one_split(tiny_clip, split, images, cache_dir=tmp_path / "c", progress=False).meta["from_cache"]
    target = images / split.images[1]["file_name"]
    with Image.open(target) as im:
        im.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(target)  # same name and size, other pixels
    changed = embed_one_split(tiny_clip, split, images, cache_dir=tmp_path / "c", progress=False)
    assert not changed.meta["from_cache"] and changed.meta["key"] != first.meta["key"]
    row = int((changed.annotation_ids == split.annotations[0].id).nonzero())
    assert split.annotations[0].image_id == 1 and not torch.allclose(changed.image[row], first.image[row])


def test_crops_survive_a_failure_after_the_crop_stage(tiny_clip, synth_bench, tmp_path, monkeypatch):
    import errno

    from fgclip_utils.extraction import embedding_cache
    from fgclip_utils.extraction.crop_pipeline import PipelineStats

    paths, root = synth_bench
    splits = [load_split(paths[n], n) for n in ("hard", "color")]

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(embedding_cache, "write_entry", disk_full)
    with pytest.raises(OSError, match="No space left"):
        embed_loaded_splits(tiny_clip, splits, root, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("crops-*.npy"))) == 1 and not list(tmp_path.glob("*.pt"))
    monkeypatch.undo()
    stats = PipelineStats()
    done = embed_loaded_splits(tiny_clip, splits, root, cache_dir=tmp_path, progress=False, stats=stats)
    assert stats.crops == 0 and all(not e.meta["from_cache"] for e in done.values())  # no crop computed again
    assert not list(tmp_path.glob("crops-*")) and len(list(tmp_path.glob("*.pt"))) == 2


def test_a_nan_row_in_the_crop_stream_is_computed_again(tiny_clip, synth_bench, tmp_path):
    import numpy as np

    from fgclip_utils.atomic_io import atomic_write_json
    from fgclip_utils.extraction.crop_pipeline import PipelineStats, plan_crops
    from fgclip_utils.extraction.crop_streams import crop_embeddings, crop_stream_path, file_states, files_record
    from fgclip_utils.extraction.row_file import RowFile

    paths, root = synth_bench
    split = load_split(paths["hard"], "hard")
    plan = plan_crops([(root / split.images[a.image_id]["file_name"], a.bbox) for a in split.annotations])
    reference, _ = crop_embeddings(tiny_clip, plan, cache_dir=tmp_path / "ref", workers=0, progress=False)
    stream = crop_stream_path(tiny_clip, plan, tmp_path)
    poisoned = reference.clone()
    poisoned[7] = float("nan")
    with RowFile(stream, len(plan), 65, check=lambda rows: np.ones(len(rows), dtype=bool)) as store:
        store.write(0, poisoned[:12])  # a killed run left 12 rows, the 8th of them NaN
    atomic_write_json(files_record(stream), file_states(plan))  # ... made from these very image files
    stats = PipelineStats()
    got, _ = crop_embeddings(tiny_clip, plan, cache_dir=tmp_path, batch_size=2, workers=0, progress=False,
                             stats=stats)
    assert len(plan) - 7 <= stats.crops < len(plan)  # resumed before the NaN row, not after it
    assert torch.isfinite(got).all() and torch.allclose(got, reference, atol=1e-5)


def test_orphans_of_killed_runs_are_cleaned(tiny_clip, synth_bench, tmp_path):
    from fgclip_utils.atomic_io import owner_tag

    paths, root = synth_bench
    host = owner_tag().rsplit("-", 1)[0]
    orphan = tmp_path / f"crops-0123456789abcdef0123-{host}-999999-deadbeef.npy"
    part = tmp_path / f".fgclip-tiny-hard-x.pt.{host}-999999-abc.part"
    resumable = tmp_path / "crops-0123456789abcdef0123.npy"
    for path in (orphan, part, resumable):
        path.write_bytes(b"left behind")
    embed_one_split(tiny_clip, load_split(paths["hard"], "hard"), root, cache_dir=tmp_path, progress=False)
    assert not orphan.exists() and not part.exists() and resumable.exists()


def test_an_image_of_another_size_than_declared_is_an_error(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    data = json.loads(paths["hard"].read_text())
    data["images"][0]["width"] = 300  # the file is 256 wide
    path = tmp_path / "hard.json"
    path.write_text(json.dumps(data))
    with pytest.raises(OSError, match=r"it is 256x256 pixels where its split declares 300x256"):
        embed_one_split(tiny_clip, load_split(path, "hard"), root, cache_dir=tmp_path, progress=False, workers=0)


def test_a_decompression_bomb_in_a_worker_is_named(tiny_clip, tmp_path, monkeypatch):
    from PIL import Image

    from fgclip_utils.extraction.crop_pipeline import encode_crops, plan_crops

    bomb = tmp_path / "bomb.png"
    Image.new("L", (3000, 3000)).save(bomb)  # 9 Mpx: a bomb once the limit is 1 Mpx
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000 // 2)
    with pytest.raises(OSError, match=r"cannot read image .*bomb.png: DecompressionBombError"):
        encode_crops(tiny_clip, plan_crops([(bomb, (0, 0, 10, 10))] * 1), workers=0, progress=False)


def test_evaluation_ranks_with_a_known_similarity(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    emb = embed_one_split(tiny_clip, load_split(paths["pattern"], "pattern"), root, cache_dir=tmp_path, progress=False)
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
    emb = embed_one_split(tiny_clip, load_split(path, "transparency"), root, cache_dir=tmp_path, progress=False)
    row = evaluate_splits({"transparency": emb}).iloc[0]
    assert row["skipped"] == 4 and row["n"] == 20


def test_fresh_embeddings_can_feed_training(tiny_clip, synth_bench, tmp_path):
    """Freshly computed (not cached) embeddings are ordinary tensors that autograd accepts."""
    paths, root = synth_bench
    emb = embed_one_split(tiny_clip, load_split(paths["hard"], "hard"), root, cache_dir=tmp_path, progress=False)
    assert emb.meta["from_cache"] is False and not emb.image.is_inference()
    layer = torch.nn.Linear(64, 64)
    layer(emb.image).sum().backward()
    assert layer.weight.grad is not None


@pytest.mark.parametrize(("tower", "broken"), [("image", "nan"), ("text", "zero")])
def test_a_backbone_with_degenerate_embeddings_is_refused_before_anything_is_cached(synth_bench, tmp_path, tower,
                                                                                     broken):
    from fgclip_utils.extraction.clip_forward import DegenerateEmbeddings

    paths, root = synth_bench
    bundle = load_clip(TINY_MODEL, device="cpu", seed=0)
    with torch.no_grad():
        weight = bundle.model.visual.proj if tower == "image" else bundle.model.text_projection
        weight.fill_(float("nan") if broken == "nan" else 0.0)
    split = load_split(paths["hard"], "hard")
    with pytest.raises(DegenerateEmbeddings, match=rf"fgclip-tiny \(random-init\): the {tower} tower gave "
                                                   r"\d+ non-finite or all-zero"):
        embed_one_split(bundle, split, root, cache_dir=tmp_path, progress=False, workers=0)
    assert not list(tmp_path.glob("*.pt"))


def test_a_full_disk_while_writing_an_entry_names_the_entry_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno
    from collections import namedtuple

    from fgclip_utils.extraction import cache_entries

    entry = tmp_path / "e.pt"
    cache_entries.write_entry(entry, {"x": torch.ones(2)}, "old")
    before = entry.read_bytes()

    def torn(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(cache_entries.torch, "save", torn)
    monkeypatch.setattr(cache_entries.shutil, "disk_usage", lambda p: namedtuple("U", "total used free")(1, 1, 0))
    with pytest.raises(OSError, match=rf"cannot write the cache entry {entry} \(no space left") as caught:
        cache_entries.write_entry(entry, {"x": torch.zeros(2)}, "new")
    assert caught.value.errno == errno.ENOSPC
    assert entry.read_bytes() == before and list(tmp_path.iterdir()) == [entry]  # no temporary left behind


def test_captions_equal_within_the_context_and_repeated_negatives_are_counted(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    data = json.loads(paths["hard"].read_text())
    long = "a red mug " + "with a very long description " * 20  # far past 77 tokens
    data["categories"] += [{"id": 9001, "name": long + "on the left"}, {"id": 9002, "name": long + "on the right"}]
    first, second = data["annotations"][0], data["annotations"][1]
    first["category_id"], first["neg_category_ids"] = 9001, [9002, *first["neg_category_ids"][1:]]
    second["neg_category_ids"] = [second["neg_category_ids"][0]] * 2 + second["neg_category_ids"][2:]
    path = tmp_path / "hard.json"
    path.write_text(json.dumps(data))
    emb = embed_one_split(tiny_clip, load_split(path, "hard"), root, cache_dir=tmp_path, progress=False)
    with pytest.warns(UserWarning, match="differs from the positive only beyond the text encoder's context"):
        row = evaluate_splits({"hard": emb}).iloc[0]
    assert (row["identical_negatives"], row["truncated_captions"], row["repeated_negatives"]) == (1, 1, 1)


def test_images_copied_with_new_modification_times_reuse_the_entry(tiny_clip, synth_bench, tmp_path):
    """An image's identity in the cache key is its content, not its mtime: a Drive round trip or a moved cache
    (new folder, new mtimes) recomputes nothing."""
    import os
    import shutil

    from fgclip_utils.data.coco_images import CONTENT_INDEX

    paths, root = synth_bench
    split = load_split(paths["hard"], "hard")
    first = embed_one_split(tiny_clip, split, root, cache_dir=tmp_path / "c", progress=False)
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved, copy_function=shutil.copy, ignore=shutil.ignore_patterns(CONTENT_INDEX))
    for path in moved.rglob("*.png"):
        os.utime(path, ns=(10 ** 18, 10 ** 18))  # another modification time than the originals'
    again = embed_one_split(tiny_clip, split, moved, cache_dir=tmp_path / "c", progress=False)
    assert again.meta["from_cache"] and again.meta["key"] == first.meta["key"]
    assert (moved / CONTENT_INDEX).exists()  # the hashes were computed once, and are kept beside the images
