"""The fast path from images on disk to crop embeddings.

Crops are planned per image (:func:`plan_crops`): every image is decoded once for all of its boxes, and the
same box of the same image asked for twice (the FG-OVD splits share their objects) is encoded once. The
images are cut into chunks of about ``batch_size`` crops; DataLoader worker processes decode, crop and
preprocess a chunk each (with the model's own transform, so the pixels are those of the simple path) while
the main process runs the model on the previous chunk; on a GPU the chunks come in pinned memory and are
copied asynchronously. Embeddings are handed on chunk by chunk (:func:`iter_crop_embeddings`), so the
host memory in flight is bounded by the chunks in the queue, whatever the number of crops.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.coco_images import ImageReadError, crop, to_rgb
from .clip_forward import encode_pixels
from .clip_models import ClipBundle, synchronize

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageCrops:
    """One image and the boxes (x, y, w, h) to cut from it; a box of None is the whole image. ``size`` is
    the (width, height) its split declares: a file of another size is an error, never a clamped crop."""

    path: str
    boxes: tuple[Box | None, ...]
    size: tuple[int, int] | None = None


@dataclass
class CropPlan:
    """Distinct crops grouped by image; ``rows[(path, box)]`` is a crop's row in the embedding matrix."""

    images: list[ImageCrops]
    rows: dict[tuple[str, Box | None], int]
    scale_factor: float = 1.0

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self) -> list:
        """The (path, box) of every row, in row order: what identifies the plan's output."""
        return [(im.path, box) for im in self.images for box in im.boxes]

    def row(self, path: str | os.PathLike, box: Box | None) -> int:
        """The row of the crop ``box`` of the image at ``path``."""
        return self.rows[_key(path, box)]


def _key(path: str | os.PathLike, box: Box | None) -> tuple[str, Box | None]:
    return str(path), None if box is None else tuple(float(v) for v in box)


def plan_crops(crops: Sequence[tuple[str | os.PathLike, Box | None]], scale_factor: float = 1.0,
               sizes: dict[str, tuple[int, int]] | None = None) -> CropPlan:
    """Group (image path, box) pairs by image, dropping repeats; rows follow the first appearance of each
    image, then of each box within it. ``sizes`` maps an image path to the (width, height) its split
    declares."""
    by_image: dict[str, dict[Box | None, None]] = {}
    for path, box in crops:
        path, box = _key(path, box)
        by_image.setdefault(path, {})[box] = None
    sizes = {str(k): tuple(v) for k, v in (sizes or {}).items()}
    images = [ImageCrops(path, tuple(boxes), sizes.get(path)) for path, boxes in by_image.items()]
    rows, row = {}, 0
    for im in images:
        for box in im.boxes:
            rows[(im.path, box)] = row
            row += 1
    return CropPlan(images, rows, float(scale_factor))


def chunk_images(plan: CropPlan, batch_size: int) -> list[list[int]]:
    """Image indices of ``plan`` cut into consecutive chunks of at least ``batch_size`` crops (the last may
    hold fewer); an image's boxes are never split, so each image is decoded by one worker only."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    chunks, current, size = [], [], 0
    for i, im in enumerate(plan.images):
        current.append(i)
        size += len(im.boxes)
        if size >= batch_size:
            chunks.append(current)
            current, size = [], 0
    if current:
        chunks.append(current)
    return chunks


@dataclass
class ChunkTimes:
    """Seconds a worker spent on one chunk: decoding images, cropping + preprocessing."""

    decode: float = 0.0
    preprocess: float = 0.0


class CropChunks(Dataset):
    """Item i: the preprocessed crops of chunk i, as (first row, pixels (n, 3, H, W), ChunkTimes)."""

    def __init__(self, plan: CropPlan, preprocess: Callable, batch_size: int):
        self.plan = plan
        self.preprocess = preprocess
        self.chunks = chunk_images(plan, batch_size)
        self.sizes = [sum(len(plan.images[i].boxes) for i in chunk) for chunk in self.chunks]  # crops per chunk
        self.starts = list(accumulate(self.sizes, initial=0))[:-1]  # first row of each chunk

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int):
        times, pixels = ChunkTimes(), []
        for i in self.chunks[index]:
            im = self.plan.images[i]
            t0 = time.perf_counter()
            try:
                with Image.open(im.path) as image:
                    image.load()
                    t1 = time.perf_counter()
                    if im.size is not None and image.size != im.size:
                        raise ImageReadError(f"cannot read image {im.path}: it is {image.size[0]}x{image.size[1]} "
                                             f"pixels where its split declares {im.size[0]}x{im.size[1]}")
                    for box in im.boxes:
                        region = to_rgb(image) if box is None else crop(image, box, self.plan.scale_factor)
                        pixels.append(self.preprocess(region))
            except ImageReadError:
                raise
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
                raise ImageReadError(f"cannot read image {im.path}: {type(err).__name__}: {err}") from err
            times.decode += t1 - t0
            times.preprocess += time.perf_counter() - t1
        return self.starts[index], torch.stack(pixels), times


def _collate(item):
    return item  # one dataset item is already a batch


def default_workers() -> int:
    """DataLoader workers for decoding and preprocessing: one per CPU core beyond the first, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


@dataclass
class PipelineStats:
    """Where the time of :func:`iter_crop_embeddings` went. ``decode`` and ``preprocess`` are summed over the
    workers (they overlap with ``model``); ``wait`` is the main process idle for the next chunk; ``extra``
    holds what callers add (e.g. :func:`~fgclip_utils.extraction.embedding_cache.embed_splits`: ``captions``,
    ``captions_s``)."""

    crops: int = 0
    chunks: int = 0
    workers: int = 0  # DataLoader workers the last run started (0: loaded in the main process)
    wall: float = 0.0
    decode: float = 0.0
    preprocess: float = 0.0
    wait: float = 0.0
    transfer: float = 0.0
    model: float = 0.0
    extra: dict = field(default_factory=dict)


def iter_crop_embeddings(bundle: ClipBundle, plan: CropPlan, *, batch_size: int = 256, workers: int | None = None,
                         precision: str = "auto", skip_rows: int = 0, progress: bool = True, desc: str = "crops",
                         stats: PipelineStats | None = None, timed: bool = False
                         ) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(first row, embeddings)`` of ``plan``'s crops chunk by chunk, in row order: L2-normalised
    float32 rows on the CPU with each one's norm as a last column (``d + 1`` columns). Chunks ending at or
    before ``skip_rows`` are not computed (resuming); the chunk across it is computed whole.

    ``workers`` decode and preprocess in parallel (None: :func:`default_workers`; 0: in this process). On a
    GPU, a batch's embeddings are copied back only once the next batch is queued, so the device never waits
    for the host in between. ``timed=True`` synchronises the GPU around the copy and the forward pass to split
    ``transfer`` from ``model`` in ``stats`` (benchmarks only: it removes those overlaps).
    """
    workers = default_workers() if workers is None else workers
    stats = stats if stats is not None else PipelineStats()
    dataset = CropChunks(plan, bundle.preprocess, batch_size)
    todo = [i for i, (start, size) in enumerate(zip(dataset.starts, dataset.sizes, strict=True))
            if start + size > skip_rows]
    if not todo:
        return
    on_gpu = bundle.device.type == "cuda"
    workers = min(workers, len(todo) - 1)  # a single chunk has nothing to overlap with: no worker to start
    stats.workers = workers
    loader = DataLoader(torch.utils.data.Subset(dataset, todo), batch_size=None, collate_fn=_collate,
                        num_workers=workers, pin_memory=on_gpu, persistent_workers=False,
                        prefetch_factor=2 if workers else None)
    bar = tqdm(total=sum(dataset.sizes[i] for i in todo), desc=desc, disable=not progress, unit="crop")
    start = time.perf_counter()
    t_wait = time.perf_counter()
    pending = None  # the previous batch, still on the device: its copy back waits until the next is queued

    def finish(first: int, emb: torch.Tensor):
        t0 = time.perf_counter()
        emb = emb.cpu()
        stats.model += time.perf_counter() - t0
        stats.crops += len(emb)
        stats.chunks += 1
        bar.update(len(emb))
        return first, emb

    try:
        for first, pixels, times in loader:
            t0 = time.perf_counter()
            stats.wait += t0 - t_wait
            stats.decode += times.decode
            stats.preprocess += times.preprocess
            if timed:
                pixels = pixels.to(bundle.device, non_blocking=True)
                synchronize(bundle.device)
                t1 = time.perf_counter()
                stats.transfer += t1 - t0
                t0 = t1
            emb = encode_pixels(bundle, pixels, precision)  # asynchronous on a GPU
            if timed:
                synchronize(bundle.device)
            stats.model += time.perf_counter() - t0
            if pending is not None:
                yield finish(*pending)
            pending = (first, emb)
            t_wait = time.perf_counter()
        if pending is not None:
            yield finish(*pending)
    finally:
        bar.close()
        stats.wall += time.perf_counter() - start


def encode_crops(bundle: ClipBundle, plan: CropPlan, **kwargs) -> torch.Tensor:
    """All of ``plan``'s crop embeddings as one (rows, d + 1) float32 tensor: unit rows and their norms (see
    :func:`iter_crop_embeddings`)."""
    out = torch.empty(len(plan), bundle.embed_dim + 1)
    for first, emb in iter_crop_embeddings(bundle, plan, **kwargs):
        out[first:first + len(emb)] = emb
    return out

