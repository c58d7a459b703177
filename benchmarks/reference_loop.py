"""The obvious extraction loop, kept as the reference the crop pipeline is checked and timed against.

For each annotation: open its image with PIL, cut the crop, preprocess it, encode it alone, then tokenize
and encode its captions (positive and negatives) as one small batch, all in fp32. Nothing is shared between
annotations or splits. It is what the pipeline must agree with (tests) and beat (``benchmarks/bench_extract.py``).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from fgclip_utils.data.coco_images import crop, image_path
from fgclip_utils.data.fgovd import Split
from fgclip_utils.extraction.clip_models import ClipBundle


@dataclass
class NaiveEmbeddings:
    """Per annotation: its crop embedding and the embeddings of its captions [positive, negatives...]."""

    annotation_ids: list[int]
    image: torch.Tensor  # (N, d)
    candidates: list[torch.Tensor]  # N tensors of shape (1 + K_i, d)


@torch.no_grad()
def naive_crop_embedding(bundle: ClipBundle, path: str | os.PathLike, box, scale_factor: float = 1.0) -> torch.Tensor:
    """The (1, d) embedding of one crop: open the image, cut the box, preprocess, encode alone, fp32."""
    with Image.open(path) as image:
        pixels = bundle.preprocess(crop(image, box, scale_factor))
    return F.normalize(bundle.model.encode_image(pixels[None].to(bundle.device)).float(), dim=-1).cpu()


@torch.no_grad()
def naive_embed_split(bundle: ClipBundle, split: Split, image_root: str | os.PathLike, *,
                      scale_factor: float = 1.0, available: Iterable[int] | None = None,
                      progress: bool = True) -> NaiveEmbeddings:
    """Embed ``split`` one annotation at a time (see the module docstring)."""
    available = None if available is None else set(available)
    ids, images, candidates = [], [], []
    for ann in tqdm(split.annotations, desc=f"naive {split.name}", disable=not progress, unit="crop"):
        if available is not None and ann.image_id not in available:
            continue
        images.append(naive_crop_embedding(bundle, image_path(image_root, split.images[ann.image_id]), ann.bbox,
                                           scale_factor))
        tokens = bundle.tokenizer([ann.positive, *ann.negatives]).to(bundle.device)
        text = bundle.model.encode_text(tokens)
        ids.append(ann.id)
        candidates.append(F.normalize(text.float(), dim=-1).cpu())
    image = torch.cat(images) if images else torch.empty(0, bundle.embed_dim)
    return NaiveEmbeddings(ids, image, candidates)
