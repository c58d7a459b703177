"""Loaded splits embedded through the package's one entry point, with the batch size these tests were written at
(256: every caption of a split in one text batch)."""
from fgclip_utils.data.benchmark_data import Benchmark
from fgclip_utils.extraction.embedding_cache import embed_splits
from fgclip_utils.profiles import ExtractConfig


def embed_one_split(bundle, split, image_root, *, available=None, scale_factor=1.0, precision="auto",
                    batch_size=256, **kwargs):
    """``embed_splits`` on a benchmark of ``split`` alone; ``available``: the image ids on disk (default: all)."""
    bench = Benchmark.of([split], image_root, None if available is None else {split.name: available})
    extract = ExtractConfig(scale_factor=scale_factor, batch_size=batch_size, precision=precision)
    return embed_splits(bundle, bench, extract=extract, **kwargs)[split.name]


def embed_loaded_splits(backbones, splits, image_root, *, batch_size=256, **kwargs):
    """``embed_splits`` on a benchmark of already loaded ``splits`` (every image on disk available)."""
    return embed_splits(backbones, Benchmark.of(splits, image_root), extract=ExtractConfig(batch_size=batch_size),
                        **kwargs)
