import io
import json
import zipfile

import pytest
import torch

from fgclip_utils.data.benchmark_data import synthetic_benchmark
from fgclip_utils.data.coco_captions import CaptionSet, download_karpathy, load_karpathy, synthetic_caption_set
from fgclip_utils.evaluation.retrieval import retrieval_recalls
from fgclip_utils.extraction.embedding_cache import CaptionEmbeddings, embed_caption_set
from fgclip_utils.heads.architectures import build_head


def _karpathy():
    return {"images": [
        {"filepath": "val2014", "filename": f"COCO_val2014_{i:012d}.jpg", "split": split,
         "sentences": [{"raw": f"caption {i}.{j}"} for j in range(6)], "cocoid": i}
        for i, split in enumerate(["train", "test", "test", "val"])]}


def test_load_karpathy_takes_the_split_and_five_captions(tmp_path):
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps(_karpathy()))
    cs = load_karpathy(path, "test")
    assert len(cs.images) == 2 and len(cs.captions) == 10 and cs.caption_image.tolist() == [0] * 5 + [1] * 5
    assert cs.images[0]["coco_url"] == "http://images.cocodataset.org/val2014/COCO_val2014_000000000001.jpg"
    bad = _karpathy()
    del bad["images"][2]["sentences"]
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"images\[2\]: missing field 'sentences'"):
        load_karpathy(path)


def test_download_karpathy_extracts_atomically(server, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data/dataset_coco.json", json.dumps(_karpathy()))
    url = server.add("caption_datasets.zip", buf.getvalue())
    path = download_karpathy(tmp_path, url)
    assert len(load_karpathy(path).images) == 2
    assert download_karpathy(tmp_path, url) == path and server.hits["/caption_datasets.zip"] == 1


def test_recalls_hand_computed_and_head_identity():
    cs = CaptionSet("t", [{}, {}], ["a", "b", "c"], torch.tensor([0, 0, 1]))
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # caption "b" points at the wrong image
    r = retrieval_recalls(CaptionEmbeddings(img, txt, cs), ks=(1, 2))
    assert r["t2i_R@1"] == pytest.approx(200 / 3) and r["t2i_R@2"] == 100.0
    # image 1's caption "c" ties with the irrelevant "b": pessimistic rank 2
    assert r["i2t_R@1"] == 50.0 and r["i2t_R@2"] == 100.0
    assert r["rsum"] == pytest.approx(200 / 3 + 100 + 50 + 100)
    same = retrieval_recalls(CaptionEmbeddings(img, txt, cs), build_head("attention", 2), ks=(1, 2))
    assert same == pytest.approx(r)


def test_synthetic_caption_set_and_embedding_cache(tiny_clip, tmp_path):
    bench = synthetic_benchmark(8, seed=4, cache_dir=tmp_path)
    cs = synthetic_caption_set(bench)
    assert len(cs.captions) == 2 * len(cs.images)
    assert all(c.startswith("a picture of a ") for c in cs.captions)
    first = embed_caption_set(tiny_clip, cs, bench.image_root, cache_dir=tmp_path / "e", progress=False)
    again = embed_caption_set(tiny_clip, cs, bench.image_root, cache_dir=tmp_path / "e", progress=False)
    assert torch.equal(first.image, again.image) and len(list((tmp_path / "e").glob("*.pt"))) == 1
    assert first.image.shape == (len(cs.images), 64) and first.text.shape == (len(cs.captions), 64)


def test_a_corrupt_caption_set_entry_is_recomputed(tiny_clip, tmp_path):
    bench = synthetic_benchmark(4, seed=5, cache_dir=tmp_path)
    cs = synthetic_caption_set(bench)
    first = embed_caption_set(tiny_clip, cs, bench.image_root, cache_dir=tmp_path / "e", progress=False)
    entry = next((tmp_path / "e").glob("*.pt"))
    entry.write_bytes(b"garbage")
    again = embed_caption_set(tiny_clip, cs, bench.image_root, cache_dir=tmp_path / "e", progress=False)
    assert torch.allclose(again.image, first.image) and torch.allclose(again.text, first.text)
    assert torch.load(entry, weights_only=True)["image"].shape == first.image.shape  # rewritten, readable
