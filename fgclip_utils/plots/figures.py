"""The one registry of the study's paper figures: each figure's file stem, the notebook that makes it, the
result tables it reads and the function that draws it from them.

Notebooks save their result tables, then draw each figure through :func:`draw_figure`, which reads those
tables back from the cache; ``make figures`` (:func:`fgclip_utils.plots.redraw.redraw`) draws through the
same entries. So the figure a notebook shows is exactly the one a redraw makes.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..data.benchmark_data import Benchmark, load_benchmark
from ..data.reported_results import reported_detectors
from ..heads.architectures import HEAD_KINDS
from ..profiles import LOSSES, Profile
from ..results import history_table, load_table
from . import fine_grained_plots, head_plots, umap_plots
from .style import apply_paper_style, save_figure


@dataclass
class FigureContext:
    """What a figure is drawn from: the profile's cached result tables and, for crops, its test benchmark."""

    profile: Profile
    benchmark: Benchmark | None = None  # the test benchmark, loaded from the cache when first needed
    _tables: dict = field(default_factory=dict, repr=False)

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            self._tables[name] = load_table(name, self.profile.name)
        return self._tables[name]

    def test_benchmark(self) -> Benchmark:
        if self.benchmark is None:
            self.benchmark = load_benchmark(self.profile, "test")  # split files and images from the cache
        return self.benchmark

    @property
    def disclaimer(self) -> str:
        return self.profile.disclaimer


@dataclass(frozen=True)
class FigureSpec:
    stem: str  # file name without profile and extension
    notebook: str  # the notebook that makes its tables
    tables: tuple[str, ...]  # result tables it reads ("nb02_history" stands for every head's history)
    draw: Callable[[FigureContext], plt.Figure]


def _split_accuracy(ctx: FigureContext) -> plt.Figure:
    return fine_grained_plots.plot_split_accuracy(ctx.table("nb01_vanilla_clip"), reported_detectors(),
                                                  ctx.disclaimer)


def _failures_hard(ctx: FigureContext) -> plt.Figure:
    worst = ctx.table("nb01_failures_hard")
    bench = ctx.test_benchmark()
    scale = float(worst["scale_factor"].iloc[0]) if len(worst) else ctx.profile.extract.scale_factor
    return fine_grained_plots.plot_failure_gallery(bench.splits["hard"], bench.image_root, worst, scale,
                                                   ctx.disclaimer)


def _gain_vs_retention(ctx: FigureContext) -> plt.Figure:
    heads = ctx.table("nb02_heads")
    return head_plots.plot_gain_vs_retention(heads, heads["method"].iloc[0], "hard", ctx.disclaimer)


def _heads_per_split(ctx: FigureContext) -> plt.Figure:
    return head_plots.plot_split_bars(ctx.table("nb02_heads"), ctx.disclaimer)


def _training_curves(ctx: FigureContext) -> plt.Figure:
    heads = ctx.table("nb02_heads")
    histories = {f"{r['kind']} / {r['loss']}": ctx.table(history_table(r["kind"], r["loss"]))
                 for _, r in heads.iterrows() if r["kind"] in HEAD_KINDS and r["loss"] in LOSSES}
    return head_plots.plot_training_curves(histories, ctx.disclaimer)


def _umap_attributes(ctx: FigureContext) -> plt.Figure:
    sep = ctx.table("nb03_separability")
    attributes = list(dict.fromkeys(sep["attribute"]))
    return umap_plots.plot_umap_grid(ctx.table("nb03_umap"), attributes, sep, ctx.disclaimer)


def _separability(ctx: FigureContext) -> plt.Figure:
    return umap_plots.plot_separability(ctx.table("nb03_separability"), "knn_acc", ctx.disclaimer)


FIGURES: dict[str, FigureSpec] = {spec.stem: spec for spec in (
    FigureSpec("fig01_split_accuracy", "01", ("nb01_vanilla_clip",), _split_accuracy),
    FigureSpec("fig02_failures_hard", "01", ("nb01_failures_hard",), _failures_hard),
    FigureSpec("fig03_gain_vs_retention", "02", ("nb02_heads",), _gain_vs_retention),
    FigureSpec("fig04_heads_per_split", "02", ("nb02_heads",), _heads_per_split),
    FigureSpec("fig05_training_curves", "02", ("nb02_heads", "nb02_history"), _training_curves),
    FigureSpec("fig06_umap_attributes", "03", ("nb03_separability", "nb03_umap"), _umap_attributes),
    FigureSpec("fig07_separability", "03", ("nb03_separability",), _separability),
)}


def draw_figure(stem: str, profile: Profile, *, benchmark: Benchmark | None = None,
                out_dir: str | os.PathLike | None = None, verbose: bool = True) -> plt.Figure:
    """Draw figure ``stem`` of ``profile`` from its cached result tables and save it as PDF and PNG.

    ``benchmark`` is the test benchmark when the caller already has it (the failure gallery needs its crops).
    """
    if stem not in FIGURES:
        raise KeyError(f"unknown figure {stem!r}; expected one of {list(FIGURES)}")
    apply_paper_style()
    fig = FIGURES[stem].draw(FigureContext(profile, benchmark))
    save_figure(fig, stem, profile.name, out_dir, verbose=verbose)
    return fig


def redraw_all(profile: Profile, out_dir: str | os.PathLike | None = None) -> tuple[list[Path], list[str]]:
    """Redraw every registered figure of ``profile``; return the saved paths and why any was skipped."""
    saved, skipped = [], []
    ctx = FigureContext(profile)
    apply_paper_style()
    for stem, spec in FIGURES.items():
        try:
            fig = spec.draw(ctx)
        except FileNotFoundError as exc:
            skipped.append(f"{stem}: {exc} (notebook {spec.notebook})")
            continue
        saved.extend(save_figure(fig, stem, profile.name, out_dir, verbose=False))
        plt.close(fig)
    return saved, skipped
