"""Figures of notebook 01: the mean rank per split next to reported detector numbers, and failure galleries."""
from __future__ import annotations

import textwrap
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from ..data.coco_images import crop, image_path
from ..data.fgovd import SPLITS, Split
from ..evaluation.ranking import PAPER_N
from .style import FULL_WIDTH, PALETTE, mark_profile


def split_ticks(order: list[str], n_of: Mapping[str, int] | None = None) -> list[str]:
    """Split titles with each one's N under it (``n_of``; default the paper's :data:`PAPER_N`)."""
    n_of = n_of or PAPER_N
    return [f"{SPLITS[s].title}\nN={n_of[s]}" if s in n_of else SPLITS[s].title for s in order]


def _grouped_bars(ax, frame: pd.DataFrame, order: list[str], hue: str, value: str, colors=None) -> None:
    x = np.arange(len(order))
    groups = list(dict.fromkeys(frame[hue]))
    width = 0.8 / max(1, len(groups))
    for i, g in enumerate(groups):
        sub = frame[frame[hue] == g].set_index("split").reindex(order)
        yerr = None
        if f"{value}_ci_low" in sub:  # the 95% bootstrap interval
            yerr = np.abs(sub[[f"{value}_ci_low", f"{value}_ci_high"]].to_numpy(float).T - sub[value].to_numpy(float))
        ax.bar(x + (i - (len(groups) - 1) / 2) * width, sub[value], width, label=g, yerr=yerr,
               error_kw={"elinewidth": 0.7, "capsize": 1.5, "ecolor": "0.25"},
               color=(colors or PALETTE)[i % len(colors or PALETTE)])
    ax.axvline(3.5, color="grey", lw=0.8, ls=":")  # difficulty splits | attribute splits


def plot_split_mean_rank(table: pd.DataFrame, reported: pd.DataFrame | None = None, disclaimer: str = "",
                         title: str = "CLIP: mean rank of the positive caption among N hard negatives"
                         ) -> plt.Figure:
    """Grouped bars of the paper's Mean Rank at N per split (hue = ``method``; 1 is best; whiskers: the 95%
    bootstrap interval over annotations where the table has it) with the rank a random scorer gets, (N + 2) / 2.

    ``reported`` (detector, split, metric, value) gets its own panel below, on the same splits: detection mAP
    is another measure and never shares an axis with a ranking.
    """
    order = [s for s in SPLITS if s in set(table["split"])]
    has_reported = reported is not None and len(reported) > 0
    fig, axes = plt.subplots(2 if has_reported else 1, 1, figsize=(FULL_WIDTH * 1.15, 5.6 if has_reported else 3.1),
                             squeeze=False, sharex=True)
    x = np.arange(len(order))
    ax = axes[0, 0]
    _grouped_bars(ax, table, order, "method", "mean_rank_at_n")
    chance = table.groupby("split")["chance_mean_rank_at_n"].first().reindex(order)
    ax.scatter(x, chance, marker="_", s=400, color="black", zorder=5, label="random scorer, (N + 2) / 2")
    ax.set_ylim(1, max(6.5, float(np.nanmax(table["mean_rank_at_n"])) * 1.08))
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_ylabel("mean rank at N\n(1 = best)")
    ax.set_title(title)
    if has_reported:
        ax2 = axes[1, 0]
        _grouped_bars(ax2, reported, order, "detector", "value", PALETTE[table["method"].nunique():])
        ax2.set_ylim(0, 100)
        ax2.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        metric = ", ".join(sorted(set(reported["metric"])))
        ax2.set_ylabel(f"{metric} (%)")
        ax2.set_title(f"Detectors: {metric} on full images, as reported by the FG-OVD authors")
        if disclaimer:
            disclaimer += "; top panel only, the detector numbers are as reported"
    n_of = {s: int(n) for s, n in table.groupby("split")["paper_n"].first().items()}
    axes[-1, 0].set_xticks(x, split_ticks(order, n_of), rotation=0, fontsize=7)
    mark_profile(fig, disclaimer)
    return fig


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
