"""The eval transform split into geometry + normalisation gives the model the very same pixels, and backbones
with the same geometry share one decode with embeddings identical to separate passes."""
from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from fgclip_utils.data.coco_images import crop
from fgclip_utils.extraction.clip_models import load_clip
from fgclip_utils.extraction.crop_pipeline import (
    default_workers,
    encode_crops,
    iter_crop_embeddings,
    plan_crops,
    shared_decode_groups,
)
from fgclip_utils.extraction.pixel_transform import split_transform

OPENAI = dict(mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))
SIGLIP = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
# the eval transforms of open_clip's pretrained configs (mean/std, resize mode, interpolation, size)
TRANSFORMS = {
    "openai B/16": (224, OPENAI, "shortest", "bicubic"),
    "openai L/14-336": (336, OPENAI, "shortest", "bicubic"),
    "siglip B/16": (224, SIGLIP, "squash", "bicubic"),
    "dfn H/14": (224, OPENAI, "squash", "bicubic"),
    "bilinear": (224, OPENAI, "longest", "bilinear"),
}


def _transform(name):
    size, norm, mode, interpolation = TRANSFORMS[name]
    return open_clip.image_transform(size, is_train=False, resize_mode=mode, interpolation=interpolation, **norm)


def _images():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (97, 151, 3), dtype=np.uint8))
    grey = Image.fromarray(rng.integers(0, 256, (300, 41), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8), "RGBA")
    return [rgb, grey, rgba, crop(rgb, (10.5, 3.2, 60.1, 70.7))]


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_split_transform_gives_the_same_pixels_bit_for_bit(name):
    whole = _transform(name)
    split = split_transform(whole)
    assert split.shareable
    for image in _images():
        u8 = split.geometry(image)
        assert u8.dtype == torch.uint8
        assert torch.equal(split.normalize(u8[None])[0], whole(image))


def test_geometry_keys_say_which_transforms_can_share_a_decode():
    keys = {name: split_transform(_transform(name)).key for name in TRANSFORMS}
    # SigLIP and DFN both squash to 224 px with bicubic resize: only their normalisation differs, so they share
    assert keys["siglip B/16"] == keys["dfn H/14"]
    others = [k for name, k in keys.items() if name != "dfn H/14"]
    assert len(set(others)) == len(others)  # every other one resizes differently


def test_a_transform_of_another_shape_is_kept_whole():
    def custom(image):
        return torch.zeros(3, 8, 8)

    split = split_transform(custom)
    assert not split.shareable and split.geometry is custom
    pixels = torch.rand(2, 3, 8, 8)
    assert split.normalize(pixels) is pixels
    assert split_transform(custom).key != split_transform(lambda im: im).key


def test_default_workers_use_every_core_on_cpu(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_workers("cpu") == 2 and default_workers("cuda") == 1
    monkeypatch.setattr("os.cpu_count", lambda: 32)
    assert default_workers("cpu") == 8


@pytest.fixture(scope="module")
def tiny_trio():
    return [load_clip(name, device="cpu", seed=0) for name in ("fgclip-tiny", "fgclip-tiny-w128", "fgclip-tiny-w192")]


def test_backbones_sharing_geometry_are_grouped(tiny_trio):
    assert [b.image_size for b in tiny_trio] == [(64, 64), (64, 64), (96, 96)]
    assert shared_decode_groups(tiny_trio) == [[0, 1], [2]]
    assert shared_decode_groups([tiny_trio[2], tiny_trio[0], tiny_trio[2]]) == [[0, 2], [1]]


def test_one_shared_decode_equals_separate_passes(tiny_trio, synth_bench):
    paths, root = synth_bench
    files = sorted(root.rglob("*.png"))[:7]
    crops = [(p, (2.0, 3.0, 20.0 + i, 18.0)) for i, p in enumerate(files)] + [(p, None) for p in files]
    plan = plan_crops(crops)
    pair = tiny_trio[:2]
    shared = [torch.empty(len(plan), b.embed_dim + 1) for b in pair]
    for first, embs in iter_crop_embeddings(pair, plan, batch_size=4, workers=0, progress=False):
        for out, emb in zip(shared, embs, strict=True):
            out[first:first + len(emb)] = emb
    for bundle, got in zip(pair, shared, strict=True):
        alone = encode_crops(bundle, plan, batch_size=4, workers=0, progress=False)
        assert torch.equal(got, alone)
        # and the pixels are those of the backbone's own whole transform
        with Image.open(files[0]) as im:
            region = crop(im, (2.0, 3.0, 20.0, 18.0))
        with torch.no_grad():
            ref = bundle.model.encode_image(bundle.preprocess(region)[None])
        torch.testing.assert_close(got[plan.row(files[0], (2.0, 3.0, 20.0, 18.0)), :-1],
                                   torch.nn.functional.normalize(ref, dim=-1)[0], rtol=0, atol=1e-6)


def test_backbones_that_resize_differently_cannot_share(tiny_trio, synth_bench):
    _, root = synth_bench
    plan = plan_crops([(p, None) for p in sorted(root.rglob("*.png"))[:2]])
    with pytest.raises(ValueError, match="resize crops differently.*shared_decode_groups"):
        next(iter_crop_embeddings([tiny_trio[0], tiny_trio[2]], plan, workers=0, progress=False))
    with pytest.raises(ValueError, match="at least one backbone"):
        next(iter_crop_embeddings([], plan, workers=0, progress=False))
    # one backbone alone goes through the same path
    (first, emb), = list(iter_crop_embeddings(tiny_trio[2], plan, workers=0, progress=False))
    assert first == 0 and emb.shape == (2, 193)


def _same_split_embeddings(a, b):
    for field in ("image", "image_norm", "text", "text_norm", "positive", "negatives", "annotation_ids"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.captions == b.captions


def test_embed_splits_many_writes_the_entries_separate_runs_would(tiny_trio, synth_bench, tmp_path):
    from split_embedding import embed_loaded_splits

    from fgclip_utils.data.fgovd import load_split

    paths, root = synth_bench
    splits = [load_split(paths[name], name) for name in ("hard", "color")]
    # one backbone has "hard" cached already: it misses other splits than the rest and is extracted apart
    embed_loaded_splits(tiny_trio[1], splits[:1], root, cache_dir=tmp_path / "shared", workers=0, progress=False)
    many = embed_loaded_splits(tiny_trio, splits, root, cache_dir=tmp_path / "shared", workers=0, progress=False)
    assert [sorted(m) for m in many] == [["color", "hard"]] * 3
    assert many[1]["hard"].meta["from_cache"] and not many[1]["color"].meta["from_cache"]
    for bundle, got in zip(tiny_trio, many, strict=True):
        alone = embed_loaded_splits(bundle, splits, root, cache_dir=tmp_path / f"alone-{bundle.name}", workers=0,
                                    progress=False)
        for name in ("hard", "color"):
            _same_split_embeddings(got[name], alone[name])
    again = embed_loaded_splits(tiny_trio, splits, root, cache_dir=tmp_path / "shared", workers=0, progress=False)
    assert all(e.meta["from_cache"] for m in again for e in m.values())
    assert not list((tmp_path / "shared").glob("crops-*.npy"))  # every stream file removed once stored


def test_embed_caption_set_many_matches_one_at_a_time(tiny_trio, synth_bench, tmp_path):
    from fgclip_utils.data.coco_captions import CaptionSet
    from fgclip_utils.extraction.embedding_cache import embed_captions

    _, root = synth_bench
    files = sorted(root.rglob("*.png"))[:5]
    cs = CaptionSet("scenes", [{"file_name": str(p.relative_to(root))} for p in files],
                    [f"a scene {i}" for i in range(10)], torch.arange(10) // 2)
    many = embed_captions(tiny_trio, cs, root, cache_dir=tmp_path / "shared", workers=0, progress=False)
    for bundle, got in zip(tiny_trio, many, strict=True):
        alone = embed_captions(bundle, cs, root, cache_dir=tmp_path / "alone", workers=0, progress=False)
        assert got.key == alone.key
        for field in ("image", "image_norm", "text", "text_norm"):
            assert torch.equal(getattr(got, field), getattr(alone, field))
