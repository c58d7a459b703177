"""The crop pipeline against the naive loop: same numbers, shared work done once, resumable, clear errors."""
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from reference_loop import naive_embed_split
from split_embedding import embed_loaded_splits, embed_one_split

from fgclip_utils.data.coco_images import image_path
from fgclip_utils.data.fgovd import SPLITS, load_split
from fgclip_utils.evaluation.fine_grained import evaluate_split
from fgclip_utils.evaluation.ranking import rank_positive
from fgclip_utils.extraction.crop_pipeline import (
    CropChunks,
    PipelineStats,
    chunk_images,
    encode_crops,
    iter_crop_embeddings,
    plan_crops,
)
from fgclip_utils.extraction.crop_streams import crop_embeddings, crop_stream_path
from fgclip_utils.extraction.row_file import RowFile

# fp32 on CPU: batching and the trimmed caption length only reorder float sums
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def splits(synth_bench):
    paths, _ = synth_bench
    return [load_split(paths[name], name) for name in SPLITS]


def test_pipeline_matches_the_naive_loop(tiny_clip, synth_bench, splits, tmp_path):
    _, root = synth_bench
    ours = embed_loaded_splits(tiny_clip, splits, root, cache_dir=tmp_path, batch_size=16, workers=2, progress=False)
    for split in splits:
        got, ref = ours[split.name], naive_embed_split(tiny_clip, split, root, progress=False)
        row = {int(a): i for i, a in enumerate(got.annotation_ids)}
        order = torch.tensor([row[a] for a in ref.annotation_ids])
        assert (got.image[order] - ref.image).abs().max() < TOLERANCE
        cand = got.candidates()[order]
        for j, texts in enumerate(ref.candidates):
            assert (got.text[cand[j][cand[j] >= 0]] - texts).abs().max() < TOLERANCE
        # and the benchmark numbers are the same
        naive_scores = torch.stack([t @ im for t, im in zip(ref.candidates, ref.image, strict=True)])
        accuracy = float((rank_positive(naive_scores) == 1).float().mean())
        assert evaluate_split(got, split=split.name).summary["accuracy"] == pytest.approx(accuracy)


def test_objects_and_captions_shared_by_splits_are_encoded_once(tiny_clip, synth_bench, splits, tmp_path):
    _, root = synth_bench
    stats = PipelineStats()
    together = embed_loaded_splits(tiny_clip, splits, root, cache_dir=tmp_path / "a", progress=False, stats=stats)
    objects = {(a.image_id, tuple(a.bbox)) for s in splits for a in s.annotations}
    captions = {c for s in splits for a in s.annotations for c in (a.positive, *a.negatives)}
    assert sum(len(s) for s in splits) == 8 * len(objects)  # every object is in every split
    assert stats.crops == len(objects) and stats.extra["captions"] == len(captions)
    for split in splits[:2]:
        alone = embed_one_split(tiny_clip, split, root, cache_dir=tmp_path / "b", progress=False)
        assert torch.equal(alone.annotation_ids, together[split.name].annotation_ids)
        assert torch.allclose(alone.image, together[split.name].image, atol=TOLERANCE)
        assert alone.captions == together[split.name].captions
    # each split has its own cache entry: a second call computes nothing
    again = PipelineStats()
    cached = embed_loaded_splits(tiny_clip, splits, root, cache_dir=tmp_path / "a", progress=False, stats=again)
    assert again.crops == 0 and all(e.meta["from_cache"] for e in cached.values())
    assert not list((tmp_path / "a").glob("crops-*"))  # the streaming file is gone once the entries exist
    # the norms kept beside the unit vectors give back the raw embeddings CLIP output
    split = splits[0]
    raw_image, raw_text = together[split.name].inputs("raw")
    with torch.no_grad():
        direct = tiny_clip.model.encode_text(tiny_clip.tokenizer(together[split.name].captions[:3]))
    assert torch.allclose(raw_text[:3], direct, atol=1e-5, rtol=1e-5)
    assert torch.allclose(raw_image / raw_image.norm(dim=-1, keepdim=True), together[split.name].image, atol=1e-6)


def test_plan_decodes_each_image_once_and_chunks_never_split_an_image(synth_bench, splits):
    _, root = synth_bench
    crops = [(image_path(root, s.images[a.image_id]), a.bbox) for s in splits for a in s.annotations]
    plan = plan_crops(crops)
    assert len(plan) == len(set((str(p), tuple(b)) for p, b in crops))
    assert len(plan.images) == len({str(p) for p, _ in crops})
    assert sorted(plan.rows.values()) == list(range(len(plan))) and plan.keys()[plan.row(*crops[5])] == \
        (str(crops[5][0]), tuple(float(v) for v in crops[5][1]))
    chunks = chunk_images(plan, 7)
    assert [i for c in chunks for i in c] == list(range(len(plan.images)))
    assert all(sum(len(plan.images[i].boxes) for i in c) >= 7 for c in chunks[:-1])
    with pytest.raises(ValueError, match="batch_size"):
        chunk_images(plan, 0)


def test_crops_stream_in_bounded_chunks_in_row_order(tiny_clip, synth_bench, splits):
    _, root = synth_bench
    plan = plan_crops([(image_path(root, s.images[a.image_id]), a.bbox) for s in splits[:1] for a in s.annotations])
    most = max(len(im.boxes) for im in plan.images)
    firsts, sizes = [], []
    for first, emb in iter_crop_embeddings(tiny_clip, plan, batch_size=5, workers=2, progress=False):
        firsts.append(first)
        sizes.append(len(emb))
    assert firsts == [sum(sizes[:i]) for i in range(len(sizes))] and sum(sizes) == len(plan)
    assert max(sizes) < 5 + most  # never more than one batch (plus the rest of one image) at a time
    in_process = encode_crops(tiny_clip, plan, batch_size=64, workers=0, progress=False)
    in_workers = encode_crops(tiny_clip, plan, batch_size=5, workers=2, progress=False)
    assert torch.allclose(in_process, in_workers, atol=TOLERANCE)


def test_worker_dataset_pickles_for_spawned_workers(tiny_clip, synth_bench, splits):
    _, root = synth_bench
    plan = plan_crops([(image_path(root, splits[0].images[a.image_id]), a.bbox) for a in splits[0].annotations])
    dataset = pickle.loads(pickle.dumps(CropChunks(plan, tiny_clip.preprocess, 8)))
    first, pixels, _ = dataset[1]
    assert first == dataset.starts[1] and pixels.shape[1:] == (3, 64, 64)


def test_interrupted_extraction_resumes_and_a_bad_image_is_named(tiny_clip, synth_bench, splits, tmp_path):
    _, root = synth_bench
    images = tmp_path / "images"
    shutil.copytree(root, images)
    plan = plan_crops([(image_path(images, s.images[a.image_id]), a.bbox) for s in splits for a in s.annotations])
    reference = encode_crops(tiny_clip, plan, workers=0, progress=False)
    bad = plan.images[-1].path
    good = Path(bad).read_bytes()
    with open(bad, "wb") as fh:
        fh.write(b"not an image")
    with pytest.raises(OSError, match=f"cannot read image {bad}"):
        crop_embeddings(tiny_clip, plan, cache_dir=tmp_path / "cache", batch_size=4, workers=2, progress=False)
    partial = list((tmp_path / "cache").glob("crops-*.npy"))
    assert len(partial) == 1 and partial[0].stat().st_size > 4 * 65 * 4  # the chunks before it were kept
    with open(bad, "wb") as fh:
        fh.write(good)  # repaired: a new file, so its rows are made again; the other images' rows are kept
    stats = PipelineStats()
    resumed, stream = crop_embeddings(tiny_clip, plan, cache_dir=tmp_path / "cache", batch_size=4, workers=2,
                                      progress=False, stats=stats)
    assert 0 < stats.crops < len(plan)  # only what was missing was computed
    assert torch.allclose(resumed, reference, atol=TOLERANCE) and stream == partial[0]


def test_rows_of_an_image_changed_since_are_made_again(tiny_clip, synth_bench, splits, tmp_path):
    _, root = synth_bench
    images = tmp_path / "images"
    shutil.copytree(root, images)
    plan = plan_crops([(image_path(images, a_split.images[a.image_id]), a.bbox)
                       for a_split in splits[:1] for a in a_split.annotations])
    first, stream = crop_embeddings(tiny_clip, plan, cache_dir=tmp_path / "cache", batch_size=4, workers=0,
                                    progress=False)
    changed = plan.images[2]
    with Image.open(changed.path) as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed.path)  # other pixels, same size
    stats = PipelineStats()
    again, _ = crop_embeddings(tiny_clip, plan, cache_dir=tmp_path / "cache", batch_size=4, workers=0,
                               progress=False, stats=stats)
    start = plan.row(changed.path, changed.boxes[0])
    assert stats.crops == len(plan) - start  # everything from the changed image on was made again
    assert torch.equal(again[:start], first[:start])
    assert not torch.allclose(again[start:start + len(changed.boxes)], first[start:start + len(changed.boxes)])


def test_precision_is_part_of_the_cache_key_and_bf16_stays_close(tiny_clip, synth_bench, splits, tmp_path):
    _, root = synth_bench
    fp32 = embed_one_split(tiny_clip, splits[3], root, cache_dir=tmp_path, progress=False)
    bf16 = embed_one_split(tiny_clip, splits[3], root, cache_dir=tmp_path, progress=False, precision="bf16")
    assert not bf16.meta["from_cache"] and bf16.meta["precision"] == "bf16" and fp32.meta["precision"] == "fp32"
    assert len(list(tmp_path.glob("*.pt"))) == 2
    assert (fp32.image * bf16.image).sum(-1).min() > 0.99 and (fp32.text * bf16.text).sum(-1).min() > 0.99


def test_a_concurrent_extraction_of_the_same_crops_works_apart(tiny_clip, synth_bench, splits, tmp_path):
    from conftest import row_file_held_by_another_process

    _, root = synth_bench
    plan = plan_crops([(image_path(root, splits[0].images[a.image_id]), a.bbox) for a in splits[0].annotations])
    reference = encode_crops(tiny_clip, plan, workers=0, progress=False)
    shared = crop_stream_path(tiny_clip, plan, tmp_path)
    with RowFile(shared, len(plan), 65) as half_done:
        half_done.write(0, reference[:3])  # rows another process has written so far
    with row_file_held_by_another_process(shared, len(plan), 65):  # ... and it is still at work
        before = shared.read_bytes()
        got, own = crop_embeddings(tiny_clip, plan, cache_dir=tmp_path, workers=0, progress=False)
        assert shared.read_bytes() == before  # neither read as a resume nor written to
        assert own != shared and own.exists()
    assert torch.allclose(got, reference, atol=TOLERANCE)
