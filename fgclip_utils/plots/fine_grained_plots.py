"""Figures of notebook 01: per-split accuracy next to reported detector numbers, and failure galleries."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..data.coco_images import crop, image_path
from ..data.fgovd import SPLITS, Split
from ..evaluation.fine_grained import SplitResult
from ..extraction.embedding_cache import SplitEmbeddings
from .style import FULL_WIDTH, PALETTE, mark_profile


def plot_split_accuracy(table: pd.DataFrame, reported: pd.DataFrame | None = None, disclaimer: str = "",
                        title: str = "CLIP: ranking the positive caption against its hard negatives") -> plt.Figure:
    """Grouped bars of accuracy per split (hue = ``method``) with each split's chance level.

    ``reported`` (detector, split, metric, value) gets its own panel below, on the same splits: detection mAP
    is another measure and never shares an axis with ranking accuracy.
    """
    order = [s for s in SPLITS if s in set(table["split"])]
    titles = [SPLITS[s].title for s in order]
    has_reported = reported is not None and len(reported) > 0
    fig, axes = plt.subplots(2 if has_reported else 1, 1, figsize=(FULL_WIDTH, 5.4 if has_reported else 3.0),
                             squeeze=False, sharex=True)
    x = np.arange(len(order))

    def bars(ax, frame, hue, value, scale, offset=0):
        groups = list(dict.fromkeys(frame[hue]))
        width = 0.8 / max(1, len(groups))
        for i, g in enumerate(groups):
            sub = frame[frame[hue] == g].set_index("split").reindex(order)
            ax.bar(x + (i - (len(groups) - 1) / 2) * width, sub[value] * scale, width, label=g,
                   color=PALETTE[(i + offset) % len(PALETTE)])
        ax.axvline(3.5, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 100)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)

    ax = axes[0, 0]
    bars(ax, table, "method", "accuracy", 100)
    chance = table.groupby("split")["chance"].first().reindex(order) * 100
    ax.scatter(x, chance, marker="_", s=400, color="black", zorder=5, label="chance")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    if has_reported:
        ax2 = axes[1, 0]
        bars(ax2, reported, "detector", "value", 1, offset=table["method"].nunique())
        metric = ", ".join(sorted(set(reported["metric"])))
        ax2.set_ylabel(f"{metric} (%)")
        ax2.set_title(f"Detectors: {metric} as reported by the FG-OVD authors")
        if disclaimer:
            disclaimer += "; top panel only, the detector numbers are as reported"
    axes[-1, 0].set_xticks(x, titles, rotation=30, ha="right")
    mark_profile(fig, disclaimer)
    return fig


def failures(split: Split, emb: SplitEmbeddings, result: SplitResult, n: int = 8) -> pd.DataFrame:
    """Up to ``n`` failures (positive not ranked first), those whose best negative beats the positive by the
    largest margin first: annotation, rank, positive, the winning negative and both scores."""
    rows = []
    cand = emb.candidates()
    by_id = {a.id: a for a in split.annotations}
    ranks = torch.full((len(emb),), 0, dtype=torch.long)
    ranks[emb.rankable] = result.ranks
    margin = result.scores[:, 1:].max(dim=1).values - result.scores[:, 0] if cand.shape[1] > 1 else \
        torch.zeros(len(emb))
    margin[~emb.rankable] = float("-inf")
    for row in torch.argsort(margin, descending=True)[:n].tolist():
        if ranks[row] <= 1:
            break
        best = int(torch.argmax(result.scores[row, 1:])) + 1
        ann = by_id[int(emb.annotation_ids[row])]
        rows.append({"annotation_id": ann.id, "image_id": ann.image_id, "rank": int(ranks[row]),
                     "positive": emb.captions[int(cand[row, 0])], "winner": emb.captions[int(cand[row, best])],
                     "positive_score": float(result.scores[row, 0]), "winner_score": float(result.scores[row, best])})
    return pd.DataFrame(rows)


def plot_failure_gallery(split: Split, image_root, failures_table: pd.DataFrame, scale_factor: float = 1.0,
                         disclaimer: str = "", title: str | None = None, ncols: int = 4) -> plt.Figure:
    """Crops of failed annotations with their positive caption (✓) and the winning negative (✗).

    The title names the ``method`` column of ``failures_table`` when it has one.
    """
    n = len(failures_table)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(FULL_WIDTH, 2.6 * nrows), squeeze=False)
    by_id = {a.id: a for a in split.annotations}
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, failures_table.iterrows(), strict=False):  # spare axes stay empty
        ann = by_id[row["annotation_id"]]
        with Image.open(image_path(image_root, split.images[ann.image_id])) as im:
            ax.imshow(crop(im, ann.bbox, scale_factor))
        wrap = lambda s: "\n".join(textwrap.wrap(s, 30))  # noqa: E731
        ax.set_title(f"rank {row['rank']}", fontsize=8)
        ax.text(0.5, -0.04, f"✓ {wrap(row['positive'])} ({row['positive_score']:.3f})\n"
                            f"✗ {wrap(row['winner'])} ({row['winner_score']:.3f})",
                transform=ax.transAxes, ha="center", va="top", fontsize=6.2, color="black",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    if n == 0:
        axes[0, 0].text(0, 0.5, "no failures: every positive ranked first", fontsize=10)
    split_title = SPLITS[split.name].title if split.name in SPLITS else split.name
    who = f"{failures_table['method'].iloc[0]} on " if "method" in failures_table and n else ""
    fig.suptitle(title or f"{who}{split_title}: positive (✓) vs winning negative (✗)", fontsize=11,
                 fontweight="bold")
    mark_profile(fig, disclaimer)
    return fig
