"""The fast path from images on disk to crop embeddings.

Crops are planned per image (:func:`plan_crops`): every image is decoded once for all of its boxes, and the
same box of the same image asked for twice (the FG-OVD splits share their objects) is encoded once. The
images are cut into chunks of about ``batch_size`` crops; DataLoader worker processes decode, crop and resize a
chunk each (the geometric part of the model's own transform, :mod:`~.pixel_transform`) while the main process
normalises the uint8 pixels and runs the model on the previous chunk, so the pixels are bit for bit those of the
simple path. On a GPU the chunks come in pinned memory and are copied asynchronously. Embeddings are handed on
chunk by chunk (:func:`iter_crop_embeddings`), so the host memory in flight is bounded by the chunks in the
queue, whatever the number of crops.

Several backbones whose transforms share their geometry (:func:`shared_decode_groups`; e.g. every 224-px ViT
with bicubic resize) take the same chunks (:func:`iter_crop_embeddings` with a list of them): each image is
decoded and each crop resized once for all of them, and only the normalisation and the model run per backbone.
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

from ..data.coco_images import ImageReadError, crop, header_problem, to_rgb
from .clip_forward import check_sound, encode_pixels
from .clip_models import ClipBundle, as_bundles, synchronize

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
    sizes = {str(k): tuple(v) for k, v in (sizes or {}).items() if v is not None}  # None: not declared
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
    """Item i: the crops of chunk i through ``preprocess`` (a PIL crop -> tensor (3, H, W); the crop pipeline
    passes a :class:`~.pixel_transform.PixelTransform`'s geometry, giving uint8), as (first row, pixels
    (n, 3, H, W), ChunkTimes)."""

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
                    if problem := header_problem(image, im.size, "its"):  # before decoding: a huge file costs nothing
                        raise ImageReadError(f"cannot read image {im.path}: it {problem}")
                    image.load()
                    t1 = time.perf_counter()
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


def default_workers(device: str | torch.device | None = None) -> int:
    """DataLoader workers for decoding and preprocessing, at most 8: one per CPU core on a CPU device, one per
    core beyond the first on a GPU (whose feeding process needs a core of its own).

    On a CPU the main process mostly waits for the workers' chunks (decoding and resizing real photographs cost
    more than a small model's forward pass), so leaving it a core idles that core (measured in
    ``benchmarks/README.md``)."""
    cores = os.cpu_count() or 2
    on_gpu = device is not None and torch.device(device).type == "cuda"
    return max(1, min(8, cores - 1 if on_gpu else cores))


def shared_decode_groups(bundles: Sequence[ClipBundle]) -> list[list[int]]:
    """Indices of ``bundles`` grouped by the geometry of their transforms: a group's crops are decoded and
    resized once for all of its backbones. Groups keep the order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, bundle in enumerate(bundles):
        groups.setdefault(bundle.pixels.key, []).append(i)
    return list(groups.values())


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


def iter_crop_embeddings(backbones: ClipBundle | Sequence[ClipBundle], plan: CropPlan, *, batch_size: int = 256,
                         workers: int | None = None, precision: str = "auto", skip_rows: int = 0,
                         progress: bool = True, desc: str = "crops", stats: PipelineStats | None = None,
                         timed: bool = False) -> Iterator[tuple[int, torch.Tensor | list[torch.Tensor]]]:
    """Yield ``(first row, embeddings)`` of ``plan``'s crops chunk by chunk, in row order: L2-normalised float32
    rows on the CPU with each one's norm as a last column (``d + 1`` columns); for a sequence of backbones, a
    list of such tensors, one per backbone. Every image is decoded and every crop resized once for all of them:
    they must share the geometry of their transforms (one group of :func:`shared_decode_groups`) and sit on one
    device. Chunks ending at or before ``skip_rows`` are not computed (resuming); the chunk across it is
    computed whole.

    ``workers`` decode and resize in parallel (None: :func:`default_workers`; 0: in this process). On a GPU, a
    batch's embeddings are copied back only once the next batch is queued, so the device never waits for the
    host in between. ``timed=True`` synchronises the GPU around the copy and the forward pass to split
    ``transfer`` from ``model`` in ``stats`` (benchmarks only: it removes those overlaps).
    """
    single = isinstance(backbones, ClipBundle)
    for first, embs in _iter_shared(as_bundles(backbones), plan, batch_size, workers, precision, skip_rows,
                                    progress, desc, stats, timed):
        yield first, embs[0] if single else embs


def _iter_shared(bundles, plan, batch_size, workers, precision, skip_rows, progress, desc, stats, timed):
    if not bundles:
        raise ValueError("iter_crop_embeddings needs at least one backbone")
    transforms = [b.pixels for b in bundles]
    if len({t.key for t in transforms}) > 1:
        raise ValueError("these backbones resize crops differently and cannot share a decode: "
                         + ", ".join(f"{b.label}: {t.key}" for b, t in zip(bundles, transforms, strict=True))
                         + " (group them with shared_decode_groups)")
    device = bundles[0].device
    if any(b.device != device for b in bundles):
        raise ValueError(f"backbones sharing a decode must sit on one device, got {[str(b.device) for b in bundles]}")
    workers = default_workers(device) if workers is None else workers
    stats = stats if stats is not None else PipelineStats()
    dataset = CropChunks(plan, transforms[0].geometry, batch_size)
    todo = [i for i, (start, size) in enumerate(zip(dataset.starts, dataset.sizes, strict=True))
            if start + size > skip_rows]
    if not todo:
        return
    on_gpu = device.type == "cuda"
    workers = min(workers, len(todo) - 1)  # a single chunk has nothing to overlap with: no worker to start
    stats.workers = workers
    loader = DataLoader(torch.utils.data.Subset(dataset, todo), batch_size=None, collate_fn=_collate,
                        num_workers=workers, pin_memory=on_gpu, persistent_workers=False,
                        prefetch_factor=2 if workers else None)
    bar = tqdm(total=sum(dataset.sizes[i] for i in todo), desc=desc, disable=not progress, unit="crop")
    start = time.perf_counter()
    t_wait = time.perf_counter()
    pending = None  # the previous batch, still on the device: its copy back waits until the next is queued

    def finish(first: int, embs: list[torch.Tensor]):
        t0 = time.perf_counter()
        embs = [check_sound(b, "image", e.cpu()) for b, e in zip(bundles, embs, strict=True)]
        stats.model += time.perf_counter() - t0
        stats.crops += len(embs[0])
        stats.chunks += 1
        bar.update(len(embs[0]))
        return first, embs

    try:
        for first, pixels, times in loader:
            t0 = time.perf_counter()
            stats.wait += t0 - t_wait
            stats.decode += times.decode
            stats.preprocess += times.preprocess
            pixels = pixels.to(device, non_blocking=True)
            if timed:
                synchronize(device)
                t1 = time.perf_counter()
                stats.transfer += t1 - t0
                t0 = t1
            embs = [encode_pixels(b, t.normalize(pixels), precision)  # asynchronous on a GPU
                    for b, t in zip(bundles, transforms, strict=True)]
            if timed:
                synchronize(device)
            stats.model += time.perf_counter() - t0
            if pending is not None:
                yield finish(*pending)
            pending = (first, embs)
            t_wait = time.perf_counter()
        if pending is not None:
            yield finish(*pending)
    finally:
        bar.close()
        stats.wall += time.perf_counter() - start


def encode_crops(backbones: ClipBundle | Sequence[ClipBundle], plan: CropPlan, **kwargs
                 ) -> torch.Tensor | list[torch.Tensor]:
    """All of ``plan``'s crop embeddings as one (rows, d + 1) float32 tensor of unit rows and their norms, or a
    list of them for a sequence of backbones (``kwargs``: see :func:`iter_crop_embeddings`)."""
    bundles = as_bundles(backbones)
    out = [torch.empty(len(plan), b.embed_dim + 1) for b in bundles]
    for first, embs in iter_crop_embeddings(bundles, plan, **kwargs):
        for o, emb in zip(out, embs, strict=True):
            o[first:first + len(emb)] = emb
    return out[0] if isinstance(backbones, ClipBundle) else out
