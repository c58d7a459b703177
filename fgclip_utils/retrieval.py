"""Coarse-grained retention: text-to-image and image-to-text Recall@K on captioned images.

``full`` uses the COCO Karpathy 5k test split (images from COCO val2014, 5 captions each); ``smoke`` uses
captions of the synthetic benchmark's scenes that name only each object's colour and shape.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .benchmark import Benchmark
from .clip_models import ClipBundle
from .download import download_file
from .crop_pipeline import plan_crops
from .embeddings import crop_embeddings, embeddings_dir, encoder_identity, read_entry, write_entry
from .encoding import encode_texts
from .heads import SimilarityHead
from .images import image_path
from .io import atomic_path, cache_root, sha256_json
from .metrics import recall_at_k

KARPATHY_ZIP_URL = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"
COCO_IMAGE_URL = "http://images.cocodataset.org/{folder}/{file_name}"


@dataclass
class CaptionSet:
    """Images with their captions; ``caption_image[j]`` is the image index of caption j."""

    name: str
    images: list[dict]  # {"file_name", "coco_url"?}
    captions: list[str]
    caption_image: torch.Tensor

    def relevance(self) -> torch.Tensor:
        """(captions, images) boolean mask of which image each caption describes."""
        mask = torch.zeros(len(self.captions), len(self.images), dtype=torch.bool)
        mask[torch.arange(len(self.captions)), self.caption_image] = True
        return mask


def load_karpathy(path: str | os.PathLike, split: str = "test", limit: int | None = None) -> CaptionSet:
    """Parse Karpathy's ``dataset_coco.json``; ``ValueError`` names the file and field when malformed."""
    path = Path(path)
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: expected an object with an 'images' list")
    images, captions, owner = [], [], []
    for i, rec in enumerate(data["images"]):
        for key in ("filepath", "filename", "split", "sentences"):
            if key not in rec:
                raise ValueError(f"{path}: images[{i}]: missing field '{key}'")
        if rec["split"] != split:
            continue
        file_name = f"{rec['filepath']}/{rec['filename']}"
        images.append({"file_name": file_name,
                       "coco_url": COCO_IMAGE_URL.format(folder=rec["filepath"], file_name=rec["filename"])})
        for s in rec["sentences"][:5]:
            captions.append(s["raw"].strip())
            owner.append(len(images) - 1)
        if limit and len(images) >= limit:
            break
    if not images:
        raise ValueError(f"{path}: no image has split {split!r}")
    return CaptionSet(f"coco-karpathy-{split}", images, captions, torch.tensor(owner))


def download_karpathy(cache_dir: str | os.PathLike | None = None, url: str = KARPATHY_ZIP_URL) -> Path:
    """Fetch Karpathy's caption archive (once) and extract ``dataset_coco.json`` atomically."""
    root = Path(cache_dir) if cache_dir else cache_root() / "coco_captions"
    json_path = root / "dataset_coco.json"
    if json_path.exists():
        return json_path
    archive = download_file(url, root / "caption_datasets.zip", validate=zipfile.is_zipfile)
    with zipfile.ZipFile(archive) as zf, atomic_path(json_path) as tmp:
        member = next((n for n in zf.namelist() if n.endswith("dataset_coco.json")), None)
        if member is None:
            raise ValueError(f"{archive}: no dataset_coco.json inside")
        tmp.write_bytes(zf.read(member))
    return json_path


def synthetic_caption_set(bench: Benchmark, split: str = "hard") -> CaptionSet:
    """Each synthetic scene with two coarse captions: its objects' colour and shape, in two orders."""
    s = bench.splits[split]
    objects: dict[int, list[str]] = {}
    for ann in s.annotations:
        objects.setdefault(ann.image_id, []).append(f"a {ann.attributes['color']} {ann.attributes['shape']}")
    images, captions, owner = [], [], []
    for image_id, objs in sorted(objects.items()):
        images.append(dict(s.images[image_id]))
        for order in (objs, objs[::-1]):
            captions.append("a picture of " + " and ".join(order))
            owner.append(len(images) - 1)
    return CaptionSet("synthetic-scenes", images, captions, torch.tensor(owner))


@dataclass
class CaptionEmbeddings:
    image: torch.Tensor
    text: torch.Tensor
    caption_set: CaptionSet


def embed_caption_set(bundle: ClipBundle, cs: CaptionSet, image_root: str | os.PathLike, batch_size: int = 256,
                      cache_dir: str | os.PathLike | None = None, progress: bool = True, workers: int | None = None,
                      precision: str = "auto") -> CaptionEmbeddings:
    """Whole-image and caption embeddings, cached by model, weights, precision and the caption set's content;
    the images go through the crop pipeline (one whole-image "crop" each)."""
    key = sha256_json({"v": 2, **encoder_identity(bundle, precision), "images": cs.images, "captions": cs.captions})
    entry = embeddings_dir(cache_dir) / f"{bundle.name}-{cs.name}-{key[:20]}.pt"
    cached = read_entry(entry)
    if cached is not None and {"image", "text"} <= cached.keys():
        return CaptionEmbeddings(cached["image"], cached["text"], cs)

    paths = [image_path(image_root, rec) for rec in cs.images]
    plan = plan_crops([(p, None) for p in paths])
    image = crop_embeddings(bundle, plan, cache_dir=cache_dir, batch_size=batch_size, workers=workers,
                            precision=precision, progress=progress, desc=cs.name)
    img = image[torch.tensor([plan.row(p, None) for p in paths], dtype=torch.long)]
    txt = encode_texts(bundle, cs.captions, batch_size=batch_size, progress=progress, precision=precision)
    write_entry(entry, {"image": img, "text": txt})
    return CaptionEmbeddings(img, txt, cs)


@torch.no_grad()
def retrieval_recalls(emb: CaptionEmbeddings, head: SimilarityHead | None = None, ks=(1, 5, 10),
                      device: str | torch.device = "cpu") -> dict[str, float]:
    """``t2i_R@k``, ``i2t_R@k`` and ``rsum`` (sum of the six recalls, in %) for vanilla cosine or ``head``."""
    img, txt = emb.image.to(device), emb.text.to(device)
    if head is None:
        sim = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
    else:
        head = head.to(device).eval()
        sim = head.similarity_matrix(img, txt)
    sim = sim.float().cpu()  # (images, captions)
    rel = emb.caption_set.relevance()  # (captions, images)
    t2i = recall_at_k(sim.T, rel, ks)
    i2t = recall_at_k(sim, rel.T, ks)
    out = {f"t2i_R@{k}": 100 * v for k, v in t2i.items()} | {f"i2t_R@{k}": 100 * v for k, v in i2t.items()}
    out["rsum"] = sum(out.values())
    return out
