"""Figures of notebook 02: fine-grained gain against coarse-grained change, per-split bars, training curves."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..data.fgovd import SPLITS
from ..heads.architectures import HEAD_KINDS
from ..results import acc_columns
from .style import FULL_WIDTH, PALETTE, mark_profile

LOSS_MARKERS = {"triplet": "o", "infonce": "s", "—": "D"}
LOSS_HATCH = {"infonce": "///"}
LOSS_LINESTYLE = {"triplet": "-", "infonce": "--"}


def kind_color(kind: str):
    """One colour per head kind in every figure of the study."""
    return PALETTE[HEAD_KINDS.index(kind) % len(PALETTE)] if kind in HEAD_KINDS else "black"


def plot_gain_vs_retention(table: pd.DataFrame, baseline: str, split: str = "hard", disclaimer: str = ""
                           ) -> plt.Figure:
    """Each method's change in ``split`` accuracy (y) against its change in COCO rsum (x), vs ``baseline``."""
    base = table.set_index("method").loc[baseline]
    rows = table[table["method"] != baseline]
    fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.62, 3.3))
    kinds = list(dict.fromkeys(rows["kind"]))
    for _, r in rows.iterrows():
        color = kind_color(r["kind"])
        ax.scatter(r["rsum"] - base["rsum"], 100 * (r[f"acc_{split}"] - base[f"acc_{split}"]), s=55,
                   color=color, marker=LOSS_MARKERS.get(r.get("loss", "—"), "D"), edgecolor="black", linewidth=0.5)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("Δ COCO retrieval rsum vs vanilla (points)")
    ax.set_ylabel(f"Δ {SPLITS[split].title} accuracy vs vanilla (points)")
    ax.set_title("Fine-grained gain vs coarse-grained change")
    handles = [plt.Line2D([], [], ls="", marker="o", color=kind_color(k), label=k) for k in kinds]
    handles += [plt.Line2D([], [], ls="", marker=m, color="grey", label=loss) for loss, m in LOSS_MARKERS.items()
                if loss in set(rows.get("loss", []))]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), title="head / loss")
    mark_profile(fig, disclaimer)
    return fig


def plot_split_bars(table: pd.DataFrame, disclaimer: str = "",
                    title: str = "Accuracy per split: vanilla CLIP and every head") -> plt.Figure:
    """Grouped bars: per-split accuracy (x) for every method (hue)."""
    cols = acc_columns(table)
    methods = list(table["method"])
    fig, ax = plt.subplots(figsize=(FULL_WIDTH, 3.2))
    width = 0.85 / len(methods)
    x = np.arange(len(cols))
    for i, (_, r) in enumerate(table.iterrows()):
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, [100 * r[c] for c in cols], width, label=r["method"],
               color=kind_color(r.get("kind", "")), hatch=LOSS_HATCH.get(r.get("loss"), ""), edgecolor="white",
               linewidth=0.3)
    ax.set_xticks(x, [SPLITS[c[4:]].title for c in cols], rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(ncol=1, fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    mark_profile(fig, disclaimer)
    return fig


def plot_training_curves(histories: dict[str, pd.DataFrame], disclaimer: str = "") -> plt.Figure:
    """Training loss and validation accuracy per epoch, one line per trained head."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.9))
    for name, h in histories.items():
        kind, _, loss = name.partition(" / ")
        color, ls = kind_color(kind), LOSS_LINESTYLE.get(loss, ":")
        ax1.plot(h["epoch"], h["train_loss"], ls, color=color, label=name)
        ax2.plot(h["epoch"], 100 * h["val_accuracy"], ls, color=color, label=name)
    ax1.set(xlabel="epoch", ylabel="training loss", title="Training loss", yscale="log")
    ax2.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy (Hard)")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    mark_profile(fig, disclaimer)
    return fig
