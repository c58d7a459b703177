"""Figures of notebook 04, the backbone sweep: mean rank per backbone and split, mean rank against model size,
and what a head trained on each backbone's own embeddings gains."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..data.fgovd import SPLITS
from ..evaluation.ranking import paper_aggregate
from .fine_grained_plots import split_ticks
from .style import FULL_WIDTH, PALETTE, mark_profile


def _backbone_order(backbones: pd.DataFrame) -> list[str]:
    """Backbones from the smallest image tower to the largest."""
    return list(backbones.sort_values(["image_params_m", "backbone"])["backbone"])


def sweep_summary(vanilla: pd.DataFrame, backbones: pd.DataFrame) -> pd.DataFrame:
    """One row per backbone: its size columns and the FG-OVD Mean Rank (mean of the eight splits' Mean Rank at
    N; NaN unless all eight were evaluated; with ``fg_ci_low`` / ``_high`` where the backbones table has them)
    beside the mean over the splits it has."""
    rows = []
    for name, part in vanilla.groupby("backbone", sort=False):
        agg = paper_aggregate(dict(zip(part["split"], part["mean_rank_at_n"], strict=True)))
        rows.append({"backbone": name, "fg": agg["fgovd_mean_rank"], "mean_over_splits": part["mean_rank_at_n"].mean(),
                     "splits": len(part)})
    named = backbones.rename(columns={"vanilla_fg_ci_low": "fg_ci_low", "vanilla_fg_ci_high": "fg_ci_high"})
    return named.merge(pd.DataFrame(rows), on="backbone")


def _interval(table: pd.DataFrame, column: str):
    """Error-bar extents of ``column`` from its ``<column>_ci_low`` / ``_ci_high`` siblings (None without them)."""
    if f"{column}_ci_low" not in table or table[f"{column}_ci_low"].isna().all():
        return None
    return np.abs(table[[f"{column}_ci_low", f"{column}_ci_high"]].to_numpy(float).T - table[column].to_numpy(float))


def plot_sweep_heatmap(vanilla: pd.DataFrame, backbones: pd.DataFrame, disclaimer: str = "",
                       n_of=None) -> plt.Figure:
    """Backbone x split heat map of the paper's Mean Rank at N (the numbers), coloured by the mean rank over a
    random scorer's, (N + 2) / 2, so that splits of different N share one scale (below 1: better than chance)."""
    order = [s for s in SPLITS if s in set(vanilla["split"])]
    rows = _backbone_order(backbones)
    values = vanilla.pivot(index="backbone", columns="split", values="mean_rank_at_n")
    values = values.reindex(index=rows, columns=order)
    chance = vanilla.groupby("split")["chance_mean_rank_at_n"].first().reindex(order)
    ratio = values / chance
    fig, ax = plt.subplots(figsize=(FULL_WIDTH * 1.1, 1.3 + 0.34 * len(rows)))
    sns.heatmap(ratio, ax=ax, annot=values, fmt=".2f", cmap="rocket_r", vmin=0, vmax=1.2, linewidths=0.5,
                annot_kws={"fontsize": 7.5}, cbar_kws={"label": "mean rank / chance", "shrink": 0.9})
    ax.set_xticklabels(split_ticks(order, n_of), rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.axvline(4, color="white", lw=2)  # difficulty splits | attribute splits
    ax.set_title("Vanilla CLIP: mean rank at N per backbone and split (1 = best)")
    mark_profile(fig, disclaimer)
    return fig


def plot_sweep_size(vanilla: pd.DataFrame, backbones: pd.DataFrame, disclaimer: str = "") -> plt.Figure:
    """FG-OVD Mean Rank (mean over the evaluated splits) against the image tower's parameters, one point per
    backbone, its family by colour."""
    summary = sweep_summary(vanilla, backbones)
    complete = summary["splits"].eq(8).all()
    y = "fg" if complete else "mean_over_splits"
    fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.7, 3.3))
    for i, fam in enumerate(dict.fromkeys(summary["family"])):
        part = summary[summary["family"] == fam]
        ax.scatter(part["image_params_m"], part[y], s=42, color=PALETTE[i % len(PALETTE)], label=fam, zorder=3,
                   edgecolor="black", linewidth=0.4)
        if complete and _interval(part, "fg") is not None:  # the 95% bootstrap interval of fg
            ax.errorbar(part["image_params_m"], part["fg"], yerr=_interval(part, "fg"), fmt="none", capsize=2,
                        ecolor=PALETTE[i % len(PALETTE)], elinewidth=0.8, zorder=2)
    for _, r in summary.iterrows():
        ax.annotate(r["model"], (r["image_params_m"], r[y]), textcoords="offset points", xytext=(4, 3), fontsize=7)
    if summary["image_params_m"].max() / max(summary["image_params_m"].min(), 1e-9) > 8:
        ax.set_xscale("log")
    ax.set_xlabel("image tower parameters (millions)")
    ax.set_ylabel("FG-OVD mean rank at N (1 = best)" if complete else
                  f"mean rank at N, mean of {int(summary['splits'].min())} splits")
    ax.set_title("Fine-grained ranking against backbone size")
    ax.margins(x=0.15)  # room for the rightmost point's label inside the axes
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False, title="weights",
              ncol=min(3, summary["family"].nunique()), fontsize=7.5)
    mark_profile(fig, disclaimer)
    return fig


def plot_head_gain(heads: pd.DataFrame, backbones: pd.DataFrame, disclaimer: str = "") -> plt.Figure:
    """(a) FG-OVD Mean Rank of vanilla CLIP and of the head per backbone (whiskers: 95% bootstrap intervals where
    the tables have them); (b) the share of the way to a perfect mean rank the head closes, against vanilla CLIP's
    mean rank: does the gain shrink as backbones improve?"""
    table = backbones[["backbone", "image_params_m"]].merge(heads, on="backbone")
    table = table.set_index("backbone").reindex(_backbone_order(backbones)).dropna(subset=["kind"]).reset_index()
    kind = table["kind"].iloc[0] if len(table) else "head"
    fig, (a, b) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 0.8 + max(2.6, 0.3 * len(table))),
                               gridspec_kw={"width_ratios": [1.4, 1]})
    y = np.arange(len(table))
    whiskers = {"elinewidth": 0.7, "capsize": 1.5, "ecolor": "0.25"}
    a.barh(y - 0.2, table["vanilla_fg"], 0.4, color=PALETTE[7], label="vanilla CLIP (cosine)",
           xerr=_interval(table, "vanilla_fg"), error_kw=whiskers)
    a.barh(y + 0.2, table["head_fg"], 0.4, color=PALETTE[0], label=f"{kind}, trained per backbone",
           xerr=_interval(table, "head_fg"), error_kw=whiskers)
    a.set_yticks(y, table["backbone"], fontsize=8)
    a.invert_yaxis()
    a.set_xlim(1, None)
    a.set_xlabel("FG-OVD mean rank at N (1 = best)")
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7.5, frameon=False, ncol=1)
    a.set_title("(a) vanilla vs head")
    b.scatter(table["vanilla_fg"], 100 * table["gap_closed"], s=42, color=PALETTE[0], edgecolor="black",
              linewidth=0.4, zorder=3)
    for _, r in table.iterrows():
        b.annotate(r["backbone"].split(" ")[0], (r["vanilla_fg"], 100 * r["gap_closed"]), textcoords="offset points",
                   xytext=(4, 3), fontsize=7)
    b.axhline(0, color="grey", lw=0.8)
    b.set_xlabel("vanilla FG-OVD mean rank")
    b.set_ylabel("gap to rank 1 closed by the head (%)")
    b.set_title("(b) gain vs starting point")
    mark_profile(fig, disclaimer)
    return fig
