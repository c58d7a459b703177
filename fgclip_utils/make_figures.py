"""Redraw every paper figure from the result tables the notebooks cached: no model, no training.

    python -m fgclip_utils.make_figures --profile smoke      (or: make figures PROFILE=full)

A figure whose table is missing is skipped with the notebook to run first.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import eval_plots, head_plots, style, umap_plots
from .benchmark import load_benchmark
from .heads import HEAD_KINDS
from .profiles import get_profile
from .reference import reported_detectors
from .results import load_table


def _histories(heads, profile: str) -> dict:
    """Training histories of the heads in ``heads`` (notebook 02's table), in its row order."""
    out = {}
    for _, row in heads.iterrows():
        if row["kind"] in HEAD_KINDS and row["loss"] in ("triplet", "infonce"):
            out[f"{row['kind']} / {row['loss']}"] = load_table(f"nb02_history_{row['kind']}_{row['loss']}", profile)
    return out


def redraw(profile: str, out_dir: str | Path | None = None) -> tuple[list[Path], list[str]]:
    """Redraw all figures of ``profile``; return the saved paths and the reasons for any skipped."""
    P = get_profile(profile)
    style.apply_paper_style()
    saved, skipped = [], []

    def save(fig, stem):
        saved.extend(style.save_figure(fig, stem, P.name, out_dir))

    try:
        table = load_table("nb01_vanilla_clip", P.name)
        save(eval_plots.plot_split_accuracy(table, reported_detectors(), P.disclaimer), "fig01_split_accuracy")
        worst = load_table("nb01_failures_hard", P.name)
        bench = load_benchmark(P, "test")  # split file and images from the cache
        save(eval_plots.plot_failure_gallery(bench.splits["hard"], bench.image_root, worst, P.scale_factor,
                                             P.disclaimer), "fig02_failures_hard")
    except FileNotFoundError as exc:
        skipped.append(f"figures 1-2: {exc} (notebook 01)")
    try:
        heads = load_table("nb02_heads", P.name)
        save(head_plots.plot_gain_vs_retention(heads, heads["method"].iloc[0], "hard", P.disclaimer),
             "fig03_gain_vs_retention")
        save(head_plots.plot_split_bars(heads, P.disclaimer), "fig04_heads_per_split")
        save(head_plots.plot_training_curves(_histories(heads, P.name), P.disclaimer), "fig05_training_curves")
    except FileNotFoundError as exc:
        skipped.append(f"figures 3-5: {exc} (notebook 02)")
    try:
        sep = load_table("nb03_separability", P.name)
        coords = load_table("nb03_umap", P.name)
        attributes = list(dict.fromkeys(sep["attribute"]))
        save(umap_plots.plot_umap_grid(coords, attributes, sep, P.disclaimer), "fig06_umap_attributes")
        save(umap_plots.plot_separability(sep, "knn_acc", P.disclaimer), "fig07_separability")
    except FileNotFoundError as exc:
        skipped.append(f"figures 6-7: {exc} (notebook 03)")
    return saved, skipped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=None, help="smoke or full (default: $FGCLIP_PROFILE, else smoke)")
    ap.add_argument("--out", default=None, help="output folder (default: figures/ or $FGCLIP_FIGURES)")
    args = ap.parse_args(argv)
    saved, skipped = redraw(get_profile(args.profile).name, args.out)
    for path in saved:
        print("saved", path)
    for reason in skipped:
        print("skipped", reason)
    return 0 if saved else 1


if __name__ == "__main__":
    raise SystemExit(main())
