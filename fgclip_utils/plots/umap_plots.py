"""UMAP projections of crop and caption embeddings, coloured by attribute value, before/after a head."""
from __future__ import annotations

import textwrap

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .style import FULL_WIDTH, PALETTE, mark_profile


def value_palette(values) -> dict:
    """Colours for attribute values: a value that names a colour ("red", "gold") is drawn in it."""
    if all(mcolors.is_color_like(v) for v in values):
        return {v: mcolors.to_rgb(v) for v in values}
    return dict(zip(values, sns.color_palette("tab10" if len(values) <= 10 else "husl", len(values)), strict=True))


def plot_umap_grid(coords: pd.DataFrame, attributes, separability: pd.DataFrame | None = None,
                   disclaimer: str = "", title: str | None = None) -> plt.Figure:
    """Rows: attributes; columns: each (stage, modality) panel, with its kNN accuracy if given.

    The title defaults to the ``method`` column of ``coords`` (what was projected), if it has one.
    """
    if title is None:
        title = "UMAP by attribute" + (f": {coords['method'].iloc[0]}" if "method" in coords else "")
    panels = list(dict.fromkeys(zip(coords["stage"], coords["modality"], strict=True)))
    fig, axes = plt.subplots(len(attributes), len(panels), figsize=(FULL_WIDTH, 1.75 * len(attributes) + 0.6),
                             squeeze=False)
    for r, attr in enumerate(attributes):
        values = sorted(coords[attr].dropna().unique())
        palette = value_palette(values)
        for c, (stage, modality) in enumerate(panels):
            ax = axes[r, c]
            sub = coords[(coords["stage"] == stage) & (coords["modality"] == modality)]
            unl = sub[sub[attr].isna()]
            ax.scatter(unl["x"], unl["y"], s=3, color="#cccccc", linewidths=0)
            for v in values:
                pts = sub[sub[attr] == v]
                ax.scatter(pts["x"], pts["y"], s=6, color=palette[v], label=v, edgecolors="#666666", linewidths=0.15)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{modality} · {stage}", fontsize=8)
            if separability is not None:
                m = separability[(separability["stage"] == stage) & (separability["modality"] == modality)
                                 & (separability["attribute"] == attr)]
                if len(m) and np.isfinite(m["knn_acc"].iloc[0]):
                    ax.text(0.02, 0.97, f"kNN {100 * m['knn_acc'].iloc[0]:.0f}%", transform=ax.transAxes,
                            ha="left", va="top", fontsize=6.5, bbox={"facecolor": "white", "alpha": 0.7,
                                                                    "edgecolor": "none", "pad": 1})
            if c == 0:
                ax.set_ylabel(attr, fontsize=9, fontweight="bold")
        axes[r, -1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=6.5, markerscale=2.5,
                           frameon=False, title=attr, title_fontsize=7)
    fig.suptitle(title, fontsize=11, fontweight="bold")
    mark_profile(fig, disclaimer)
    return fig


def plot_separability(table: pd.DataFrame, metric: str = "knn_acc", disclaimer: str = "") -> plt.Figure:
    """Bars of ``metric`` per attribute, before vs after, for each modality, with the majority baseline."""
    modalities = list(dict.fromkeys(table["modality"]))
    stages = list(dict.fromkeys(table["stage"]))
    fig, axes = plt.subplots(1, len(modalities), figsize=(FULL_WIDTH, 2.8), squeeze=False, sharey=True)
    label = {"knn_acc": "kNN accuracy (%)", "probe_acc": "linear-probe accuracy (%)"}.get(metric, metric)
    for ax, modality in zip(axes[0], modalities, strict=True):
        sub = table[table["modality"] == modality]
        attrs = list(dict.fromkeys(sub["attribute"]))
        x = np.arange(len(attrs))
        width = 0.8 / len(stages)
        for i, stage in enumerate(stages):
            vals = sub[sub["stage"] == stage].set_index("attribute").reindex(attrs)
            ax.bar(x + (i - (len(stages) - 1) / 2) * width, 100 * vals[metric], width, label=stage,
                   color=PALETTE[i % len(PALETTE)])
        base = sub.groupby("attribute")["majority"].first().reindex(attrs)
        ax.scatter(x, 100 * base, marker="_", s=300, color="black", zorder=5, label="majority class")
        ax.set_xticks(x, attrs, rotation=20)
        ax.set_title(f"{modality} embeddings")
        ax.set_ylim(0, 100)
    axes[0, 0].set_ylabel(label)
    axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle("How separable is each attribute? (held-out)", fontsize=11, fontweight="bold")
    mark_profile(fig, disclaimer)
    return fig


def plot_attribute_confusion(table: pd.DataFrame, disclaimer: str = "") -> plt.Figure:
    """Rows: methods; columns: attributes. Each panel: for each positive value (rows), the share of its
    annotations whose best-scoring negative, of each other value (columns), beat it."""
    methods = list(dict.fromkeys(table["method"]))
    attributes = list(dict.fromkeys(table["attribute"]))
    fig, axes = plt.subplots(len(methods), len(attributes), figsize=(FULL_WIDTH, 2.0 * len(methods) + 0.9),
                             squeeze=False, constrained_layout=True)
    for c, attribute in enumerate(attributes):
        sub = table[table["attribute"] == attribute]
        values = sorted(set(sub["positive"]) | set(sub["confused_with"]))
        for r, method in enumerate(methods):
            ax = axes[r, c]
            grid = (sub[sub["method"] == method].pivot_table(index="positive", columns="confused_with",
                                                             values="share", aggfunc="sum")
                    .reindex(index=values, columns=values).fillna(0.0))
            sns.heatmap(100 * grid, ax=ax, vmin=0, vmax=100, cmap="rocket_r", cbar=False, annot=len(values) <= 6,
                        fmt=".0f", annot_kws={"fontsize": 5.5}, square=True, linewidths=0.3, linecolor="white")
            ax.set_xlabel("")
            ax.set_ylabel(textwrap.fill(method, 24) if c == 0 else "", fontsize=7.5)
            ax.tick_params(labelsize=6, length=0)
            ax.tick_params(axis="y", labelrotation=0)
            ax.tick_params(axis="x", labelrotation=90)
            if r == 0:
                ax.set_title(attribute, fontsize=9, fontweight="bold")
    fig.colorbar(axes[0, 0].collections[0], ax=axes.ravel().tolist(), shrink=0.7,
                 label="% of the positive value's annotations")
    fig.supxlabel("value of the negative that beat the positive (columns); positive's value (rows)", fontsize=8)
    fig.suptitle("What each attribute value is confused with", fontsize=11, fontweight="bold")
    mark_profile(fig, disclaimer)
    return fig
