import io
import json
import zipfile

import numpy as np
import pytest
import torch

from fgclip_utils.data.benchmark_data import synthetic_benchmark
from fgclip_utils.data.coco_captions import (
    CaptionSet,
    coco_caption_images,
    coco_karpathy,
    load_karpathy,
    synthetic_caption_set,
)
from fgclip_utils.data.download import DownloadError
from fgclip_utils.evaluation.retrieval import authors_coco_recalls, retrieval_recalls
from fgclip_utils.extraction.embedding_cache import CaptionEmbeddings, embed_captions
from fgclip_utils.heads.architectures import build_head


def _karpathy():
    return {"images": [
        {"filepath": "val2014", "filename": f"COCO_val2014_{i:012d}.jpg", "split": split,
         "sentences": [{"raw": f"caption {i}.{j}"} for j in range(6)], "cocoid": i}
        for i, split in enumerate(["train", "test", "test", "val", "restval"])]}


def test_load_karpathy_takes_the_split_and_five_captions(tmp_path):
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps(_karpathy()))
    cs = load_karpathy(path, "test")
    assert len(cs.images) == 2 and len(cs.captions) == 10 and cs.caption_image.tolist() == [0] * 5 + [1] * 5
    assert cs.images[0]["coco_url"] == "http://images.cocodataset.org/val2014/COCO_val2014_000000000001.jpg"
    train = load_karpathy(path, "train")  # train means train + restval, the paper's warm-up set
    assert [im["file_name"][-6:] for im in train.images] == ["00.jpg", "04.jpg"]
    bad = _karpathy()
    del bad["images"][2]["sentences"]
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"images\[2\]: missing field 'sentences'"):
        load_karpathy(path)


def _coco_captions(ids, folder, captions_per_image=6):
    images = [{"id": i, "file_name": f"COCO_{folder}_{i:012d}.jpg", "width": 64, "height": 48,
               "coco_url": f"http://images.cocodataset.org/{folder}/COCO_{folder}_{i:012d}.jpg"} for i in ids]
    anns = [{"image_id": i, "id": 100 * i + j, "caption": f"img {i} caption {j}"}
            for j in range(captions_per_image) for i in ids]  # COCO's order: not grouped by image
    return {"images": images, "annotations": anns}


def _zip(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, json.dumps(data))
    return buf.getvalue()


def test_default_source_is_clip_benchmark_plus_coco_for_restval(upstream, tmp_path):
    upstream.serve_asset("retrieval_annotations/coco_test_karpathy.json",
                         json.dumps(_coco_captions([11, 12], "val2014")).encode())
    upstream.serve_asset("retrieval_annotations/coco_val_karpathy.json",
                         json.dumps(_coco_captions([13], "val2014")).encode())
    annotations = _zip({"annotations/captions_train2014.json": _coco_captions([1, 2], "train2014"),
                        "annotations/captions_val2014.json": _coco_captions([11, 12, 13, 14], "val2014")})
    upstream.serve_asset("coco/annotations/annotations_trainval2014.zip", annotations)
    test = coco_karpathy("test", cache_dir=tmp_path)
    assert [im["file_name"] for im in test.images] == ["val2014/COCO_val2014_000000000011.jpg",
                                                       "val2014/COCO_val2014_000000000012.jpg"]
    assert len(test.captions) == 10 and test.captions[:2] == ["img 11 caption 0", "img 11 caption 1"]
    assert test.images[0]["width"] == 64 and "CLIP_benchmark" in test.source
    train = coco_karpathy("train", cache_dir=tmp_path)  # train2014 + val2014 minus Karpathy val and test
    assert [im["id"] for im in train.images] == [1, 2, 14] and len(train.captions) == 15
    assert coco_karpathy("val", cache_dir=tmp_path, limit=1).captions == [f"img 13 caption {j}" for j in range(5)]

    # no hash is published: the first download's sha256 is recorded and every reuse is checked against it
    recorded = json.loads((tmp_path / ".recorded-hashes.json").read_text())
    assert set(recorded) == {"retrieval_annotations/coco_test_karpathy.json",
                             "retrieval_annotations/coco_val_karpathy.json",
                             "coco/annotations/annotations_trainval2014.zip"}
    key = "retrieval_annotations/coco_test_karpathy.json"
    hits = upstream.hits(key)
    cached = tmp_path / "coco_test_karpathy.json"
    cached.write_text(json.dumps(_coco_captions([99], "val2014")))  # the cached copy is altered ...
    assert [im["id"] for im in coco_karpathy("test", cache_dir=tmp_path).images] == [11, 12]  # ... and fetched again
    assert upstream.hits(key) == hits + 1
    upstream.serve_asset(key, json.dumps(_coco_captions([98], "val2014")).encode())  # upstream changes the file
    cached.write_text("{}")
    with pytest.raises(DownloadError, match=r"coco_test_karpathy.json has sha256:\w+, expected sha256:\w+; not kept"):
        coco_karpathy("test", cache_dir=tmp_path)
    assert cached.read_text() == "{}"  # the changed upstream file was not kept


def test_a_zip_with_a_corrupt_member_is_never_kept(upstream, tmp_path):
    good = _zip({"annotations/captions_train2014.json": _coco_captions([1], "train2014"),
                 "annotations/captions_val2014.json": _coco_captions([11], "val2014")})
    broken = bytearray(good)
    start = broken.index(b"img 1 caption 0")
    broken[start:start + 3] = b"IMG"  # a flipped member byte: the end record is intact, the CRC is not
    assert zipfile.is_zipfile(io.BytesIO(bytes(broken)))
    upstream.serve_asset("coco/annotations/annotations_trainval2014.zip", bytes(broken))
    upstream.serve_asset("retrieval_annotations/coco_test_karpathy.json",
                         json.dumps(_coco_captions([12], "val2014")).encode())
    upstream.serve_asset("retrieval_annotations/coco_val_karpathy.json",
                         json.dumps(_coco_captions([13], "val2014")).encode())
    with pytest.raises(DownloadError, match="zip member .* is corrupt"):
        coco_karpathy("train", cache_dir=tmp_path)
    assert not (tmp_path / "annotations_trainval2014.zip").exists()


def test_karpathy_json_from_a_local_file_or_url(server, tmp_path, monkeypatch):
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps(_karpathy()))
    monkeypatch.setenv("FGCLIP_KARPATHY_JSON", str(path))
    assert len(coco_karpathy("test", cache_dir=tmp_path / "c").images) == 2
    url = server.add("mirror/caption_datasets.zip", _zip({"data/dataset_coco.json": _karpathy()}))
    cs = coco_karpathy("train", karpathy_json=url, cache_dir=tmp_path / "c")
    assert len(cs.images) == 2 and server.hits["/mirror/caption_datasets.zip"] == 1
    coco_karpathy("val", karpathy_json=url, cache_dir=tmp_path / "c")
    assert server.hits["/mirror/caption_datasets.zip"] == 1  # kept, verified by its recorded sha256
    monkeypatch.setenv("FGCLIP_KARPATHY_JSON", str(tmp_path / "nope.json"))
    with pytest.raises(FileNotFoundError, match="nope.json .*FGCLIP_KARPATHY_JSON"):
        coco_karpathy("test", cache_dir=tmp_path / "c")


def test_coco_caption_files_name_the_bad_field(tmp_path):
    data = _coco_captions([1], "val2014")
    data["annotations"][0]["caption"] = None
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"c.json: annotations\[0\]: needs an integer 'image_id' and a string"):
        coco_caption_images(path)


def test_recalls_hand_computed_and_head_identity():
    cs = CaptionSet("t", [{}, {}], ["a", "b", "c"], torch.tensor([0, 0, 1]))
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # caption "b" points at the wrong image
    r = retrieval_recalls(CaptionEmbeddings(img, txt, cs), ks=(1, 2))
    assert r["t2i_r1"] == pytest.approx(200 / 3) and r["t2i_r2"] == 100.0
    # image 1's caption "c" ties with the irrelevant "b": pessimistic rank 2
    assert r["i2t_r1"] == 50.0 and r["i2t_r2"] == 100.0
    assert r["rsum"] == pytest.approx(200 / 3 + 100 + 50 + 100)
    # each recall with its 95% bootstrap interval over the queries (2 images, 3 captions: wide)
    assert r["i2t_r1_ci_low"] == 0.0 and r["i2t_r1_ci_high"] == 100.0
    assert r["i2t_r2_ci_low"] == r["i2t_r2_ci_high"] == 100.0  # every query a hit: no spread
    assert r["t2i_r1_ci_low"] <= r["t2i_r1"] <= r["t2i_r1_ci_high"]
    same = retrieval_recalls(CaptionEmbeddings(img, txt, cs), build_head("attention", 2), ks=(1, 2))
    assert same == pytest.approx(r)


def _authors_loop(images: np.ndarray, captions: np.ndarray):
    """FG-CLIP's i2t/t2i for vanilla CLIP, as their src/metrics.py describes it, one query at a time (the
    reference the vectorised version is checked against): rows are 5 per block, the first block twice."""
    npts = images.shape[0] // 5
    i2t, t2i = np.zeros(npts), np.zeros(5 * npts)
    for index in range(npts):
        im = images[5 * index].reshape(1, -1)
        caps = captions / np.linalg.norm(captions, axis=0)
        d = np.dot(im / np.linalg.norm(im, axis=0), caps.T).flatten()
        inds = np.argsort(d)[::-1]
        i2t[index] = min(np.where(inds == i)[0][0] for i in range(5 * index, 5 * index + 5))
    ims = images[::5]
    for index in range(npts):
        q = captions[5 * index:5 * index + 5]
        d = np.dot(q / np.linalg.norm(q, axis=0), (ims / np.linalg.norm(ims, axis=0)).T)
        for i in range(5):
            t2i[5 * index + i] = np.where(np.argsort(d[i])[::-1] == index)[0][0]
    return {f"{name}_r{k}": 100.0 * float((ranks < k).mean())
            for name, ranks in (("i2t", i2t), ("t2i", t2i)) for k in (1, 5, 10)}


def test_the_authors_coco_evaluation_is_reproduced_and_differs_from_the_standard_one():
    g = torch.Generator().manual_seed(0)
    n, d = 30, 8
    image = torch.randn(n, d, generator=g) * 3 + 0.5  # raw embeddings: norms far from 1
    owner = torch.arange(n).repeat_interleave(5)
    text = image[owner] + 2.5 * torch.randn(5 * n, d, generator=g)
    cs = CaptionSet("t", [{}] * n, [str(i) for i in range(5 * n)], owner)
    emb = CaptionEmbeddings(torch.nn.functional.normalize(image, dim=-1), torch.nn.functional.normalize(text, dim=-1),
                            cs, image.norm(dim=-1), text.norm(dim=-1))
    # their arrays: per image its captions in reverse order, the first image's block twice
    rows = [j for i in [0, *range(n)] for j in reversed(range(5 * i, 5 * i + 5))]
    expected = _authors_loop(image[owner[rows]].numpy(), text[rows].numpy())
    got = authors_coco_recalls(emb)
    assert {k: got[k] for k in expected} == pytest.approx(expected)
    assert got["rsum"] == pytest.approx(sum(expected.values()))
    standard = retrieval_recalls(emb)
    assert standard["i2t_r1"] != got["i2t_r1"] or standard["t2i_r1"] != got["t2i_r1"]
    # with a head, both scorings use the head's scores on raw embeddings
    head = build_head("paper-linear", d, seed=0)
    with_head = authors_coco_recalls(emb, head)
    assert set(with_head) == set(got) and 0 <= with_head["i2t_r1"] <= 100
    uneven = CaptionSet("u", [{}] * 2, ["a", "b", "c"], torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="same number of captions for every image"):
        authors_coco_recalls(CaptionEmbeddings(torch.ones(2, 2), torch.ones(3, 2), uneven))


def test_synthetic_caption_set_and_embedding_cache(tiny_clip, tmp_path):
    bench = synthetic_benchmark(8, seed=4, cache_dir=tmp_path)
    cs = synthetic_caption_set(bench)
    assert len(cs.captions) == 2 * len(cs.images)
    assert all(c.startswith("a picture of a ") for c in cs.captions)
    first = embed_captions(tiny_clip, cs, bench.image_root, cache_dir=tmp_path / "e", progress=False)
    again = embed_captions(tiny_clip, cs, bench.image_root, cache_dir=tmp_path / "e", progress=False)
    assert torch.equal(first.image, again.image) and len(list((tmp_path / "e").glob("*.pt"))) == 1
    assert first.image.shape == (len(cs.images), 64) and first.text.shape == (len(cs.captions), 64)
    assert first.key and again.key == first.key and first.image_norm.shape == (len(cs.images),)


def test_a_corrupt_caption_set_entry_is_recomputed(tiny_clip, tmp_path):
    bench = synthetic_benchmark(4, seed=5, cache_dir=tmp_path)
    cs = synthetic_caption_set(bench)
    first = embed_captions(tiny_clip, cs, bench.image_root, cache_dir=tmp_path / "e", progress=False)
    entry = next((tmp_path / "e").glob("*.pt"))
    entry.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="cannot be read"):
        again = embed_captions(tiny_clip, cs, bench.image_root, cache_dir=tmp_path / "e", progress=False)
    assert torch.allclose(again.image, first.image) and torch.allclose(again.text, first.text)
    assert torch.load(entry, weights_only=True)["image"].shape == first.image.shape  # rewritten, readable
