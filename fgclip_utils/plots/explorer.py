"""An ipywidgets explorer: pick a split and an annotation, see the crop, its positive and negatives with
the scores of each method (vanilla CLIP and trained heads). Plain widgets whose values are set from Python,
so it also runs (and is tested) without a browser."""
from __future__ import annotations

import io
from collections.abc import Mapping

from PIL import Image

from ..data.benchmark_data import Benchmark
from ..data.coco_images import crop, image_path
from ..evaluation.fine_grained import annotation_scores
from ..evaluation.similarity import Similarity
from ..extraction.embedding_cache import SplitEmbeddings


def _png(image: Image.Image, size: int = 224) -> bytes:
    image = image.copy()
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def make_explorer(bench: Benchmark, embeddings: Mapping[str, SplitEmbeddings], methods: Mapping[str, Similarity | None],
                  scale_factor: float = 1.0):
    """The explorer widget (a VBox). ``embeddings`` maps split name to its embeddings."""
    import ipywidgets as w

    splits = list(embeddings)
    split_box = w.Dropdown(options=splits, value=splits[0], description="split")
    index = w.IntSlider(value=0, min=0, max=len(embeddings[splits[0]]) - 1, description="annotation",
                        continuous_update=False)
    picture = w.Image(format="png", width=224)
    details = w.HTML()

    def update(*_):
        emb = embeddings[split_box.value]
        index.max = len(emb) - 1
        row = min(index.value, index.max)
        split = bench.splits[split_box.value]
        ann = next(a for a in split.annotations if a.id == int(emb.annotation_ids[row]))
        with Image.open(image_path(bench.image_root, split.images[ann.image_id])) as im:
            picture.value = _png(crop(im, ann.bbox, scale_factor))
        table = annotation_scores(emb, row, methods)
        details.value = (f"<b>annotation {ann.id}</b> (image {ann.image_id}), {len(table) - 1} negatives"
                         + table.to_html(index=False, float_format=lambda v: f"{v:.3f}"))

    split_box.observe(update, names="value")
    index.observe(update, names="value")
    update()
    return w.VBox([w.HBox([split_box, index]), w.HBox([picture, details])])
