"""Figures of notebook 02: the paper's heads against its published points, per-split mean ranks, the recipe's
validation curves, and the study's own heads (fine-grained gain against coarse-grained change)."""
from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..data.fgovd import SPLITS
from ..heads.architectures import kind_family
from ..heads.study_heads import STUDY_HEAD_KINDS
from .fine_grained_plots import split_ticks
from .style import FULL_WIDTH, PALETTE, mark_profile

STAGE_MARKERS = {"vanilla": "o", "warmup": "^", "fg-ovd": "s"}
LOSS_MARKERS = {"triplet": "o", "infonce": "s"}
PAPER_KIND = {"CLIP B/16": "cosine", "linear": "linear", "linear-image": "linear-image", "linear-text": "linear-text",
              "mlp": "mlp", "attention": "attention"}  # the paper tables' method names -> head families


def kind_color(kind: str):
    """One colour per head family in every figure of the study (``paper-linear`` shares ``linear``'s)."""
    family = kind_family(str(kind))
    return PALETTE[STUDY_HEAD_KINDS.index(family) % len(PALETTE)] if family in STUDY_HEAD_KINDS else "black"


def plot_fg_vs_coco(ours: pd.DataFrame, paper: pd.DataFrame, disclaimer: str = "",
                    coco: str = "authors") -> plt.Figure:
    """FG-OVD Mean Rank (x, lower is better) against COCO R@1 (y), image->text and text->image, for the paper's
    published rows (hollow) and this run's (filled, with fg's 95% bootstrap interval where ``ours`` has it;
    half-filled: stage 2 as the authors' code ran it); colour = head, marker = stage.

    ``coco="authors"`` plots this run's recalls as the authors' evaluation code computes them (the measure of
    the published points); ``"standard"`` the standard ones.
    """
    prefix = "authors_" if coco == "authors" else ""
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH * 1.15, 3.4), sharex=True)
    for ax, direction, label in zip(axes, ("i2t", "t2i"), ("image → text", "text → image"), strict=True):
        for _, r in paper.iterrows():
            ax.scatter(r["fg"], r[f"{direction}_r1"], s=46, facecolors="none", linewidths=1.3,
                       edgecolors=kind_color(PAPER_KIND.get(r["method"], r["method"])),
                       marker=STAGE_MARKERS.get(r["stage"], "D"))
        for _, r in ours.iterrows():
            y = r[f"{prefix}{direction}_r1"]
            if "fg_ci_low" in r and r["fg_ci_low"] == r["fg_ci_low"]:  # the 95% bootstrap interval of fg
                ax.errorbar(r["fg"], y, xerr=[[r["fg"] - r["fg_ci_low"]], [r["fg_ci_high"] - r["fg"]]], fmt="none",
                            ecolor=kind_color(r["kind"]), elinewidth=0.8, capsize=2, zorder=2)
            ax.plot(r["fg"], y, ls="", ms=6.3, color=kind_color(r["kind"]), marker=STAGE_MARKERS.get(r["stage"], "D"),
                    markeredgecolor="black", markeredgewidth=0.4, zorder=3,
                    fillstyle="left" if r.get("recipe") == "as-run" else "full")
        ax.set_ylabel(f"COCO {label} R@1 (%)")
        ax.set_title(label)
    fig.supxlabel("FG-OVD mean rank (mean of the 8 splits' mean rank at N; lower is better)", fontsize=10)
    kinds = list(dict.fromkeys(["cosine", *ours["kind"].map(kind_family)]))
    handles = [plt.Line2D([], [], ls="", marker="o", color=kind_color(k), label="CLIP (cosine)" if k == "cosine" else k)
               for k in kinds]
    handles += [plt.Line2D([], [], ls="", marker=m, color="grey", label=f"stage: {s}")
                for s, m in STAGE_MARKERS.items()]
    handles += [plt.Line2D([], [], ls="", marker="o", color="grey", label="this run")]
    if "recipe" in ours and ours["recipe"].eq("as-run").any():
        handles.append(plt.Line2D([], [], ls="", marker="o", color="grey", fillstyle="left",
                                  label="this run, stage 2 as-run"))
    handles.append(plt.Line2D([], [], ls="", marker="o", markerfacecolor="none", markeredgecolor="grey", label="paper"))
    axes[1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    measure = "as the authors' code computes it" if coco == "authors" else "standard recall"
    fig.suptitle(f"Fine-grained mean rank vs COCO R@1 ({measure}):\nthe paper (hollow) and this run (filled)",
                 fontsize=10, fontweight="bold")
    mark_profile(fig, disclaimer)
    return fig


def plot_heads_per_split(table: pd.DataFrame, disclaimer: str = "",
                         title: str = "Mean rank at N per split: vanilla CLIP and the paper's heads",
                         n_of: Mapping[str, int] | None = None) -> plt.Figure:
    """Grouped bars of each row's per-split Mean Rank at N (``mr_<split>`` columns; 1 is best; whiskers: the 95%
    bootstrap interval where the table has it; dotted: stage 2 as-run); ``n_of`` gives each split's N for the
    axis (default the paper's)."""
    order = [s for s in SPLITS if f"mr_{s}" in table.columns]
    fig, ax = plt.subplots(figsize=(FULL_WIDTH, 3.3))
    width = 0.85 / len(table)
    x = np.arange(len(order))
    for i, (_, r) in enumerate(table.iterrows()):
        values = np.array([r[f"mr_{s}"] for s in order], dtype=float)
        yerr = None
        if all(f"mr_{s}_ci_low" in r for s in order):  # each split's 95% bootstrap interval
            yerr = np.abs(np.array([[r[f"mr_{s}_ci_low"] for s in order], [r[f"mr_{s}_ci_high"] for s in order]])
                          - values)
        ax.bar(x + (i - (len(table) - 1) / 2) * width, values, width, label=r["method"], yerr=yerr,
               error_kw={"elinewidth": 0.6, "capsize": 1.2, "ecolor": "0.25"},
               color=kind_color(r.get("kind", "cosine")), edgecolor="white", linewidth=0.3,
               hatch="///" if r.get("stage") == "warmup" else ("..." if r.get("recipe") == "as-run" else ""))
    ax.set_xticks(x, split_ticks(order, n_of), fontsize=7)
    ax.axvline(3.5, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("mean rank at N (1 = best)")
    ax.set_ylim(1, None)
    ax.set_title(title)
    ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    mark_profile(fig, disclaimer)
    return fig


def plot_paper_training(histories: dict[str, pd.DataFrame], disclaimer: str = "") -> plt.Figure:
    """The paper recipe's validation curves per head: stage 1's loss (COCO pairs) and stage 2's Hard mean rank at
    N = 10; ``histories`` maps ``"<kind> / <stage>[ seed <s>][ (as-run)]"`` to a history table (as-run: dashed)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(FULL_WIDTH * 1.15, 3.1))
    for name, h in histories.items():
        kind, _, stage = name.partition(" / ")
        label = kind + stage.partition(" ")[1] + stage.partition(" ")[2]  # the kind with its seed and recipe
        if stage.startswith("warmup"):
            ax1.plot(h["epoch"], h["val_loss"] / h["val_loss"].iloc[0], "-o", ms=2.5, color=kind_color(kind),
                     label=label)
        else:
            as_run = stage.endswith("(as-run)")
            ax2.plot(h["epoch"], h["val_mean_rank"], "--o" if as_run else "-o", ms=2.5, color=kind_color(kind),
                     label=label, fillstyle="none" if as_run else "full")
    ax1.set(xlabel="epoch (0: before training)", ylabel="val. loss / epoch 0's", title="Stage 1: warm-up")
    ax2.set(xlabel="epoch (0: warm-up weights)", ylabel="Hard val. mean rank (N=10)", title="Stage 2: FG-OVD Hard")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    mark_profile(fig, disclaimer)
    return fig


def plot_study_heads(table: pd.DataFrame, baseline: str, split: str = "hard", disclaimer: str = "") -> plt.Figure:
    """The study's heads: the drop of their ``split`` mean rank at N below ``baseline``'s (y, higher is better)
    against their change in COCO rsum (x)."""
    base = table.set_index("method").loc[baseline]
    rows = table[table["method"] != baseline]
    fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.62, 3.3))
    for _, r in rows.iterrows():
        ax.scatter(r["rsum"] - base["rsum"], base[f"mr_{split}"] - r[f"mr_{split}"], s=55, color=kind_color(r["kind"]),
                   marker=LOSS_MARKERS.get(r.get("loss"), "D"), edgecolor="black", linewidth=0.5)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("Δ COCO retrieval rsum vs vanilla (points)")
    ax.set_ylabel(f"{SPLITS[split].title} mean rank at N:\nvanilla − head (higher is better)")
    ax.set_title("The study's heads: fine-grained gain vs coarse-grained change")
    handles = [plt.Line2D([], [], ls="", marker="o", color=kind_color(k), label=k)
               for k in dict.fromkeys(rows["kind"])]
    handles += [plt.Line2D([], [], ls="", marker=m, color="grey", label=loss) for loss, m in LOSS_MARKERS.items()
                if loss in set(rows.get("loss", []))]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), title="head / loss")
    mark_profile(fig, disclaimer)
    return fig
