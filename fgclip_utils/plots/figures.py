"""The one registry of the study's paper figures: each figure's file stem, the notebook that makes it, the
result tables it reads and the function that draws it from them.

Notebooks save their result tables, then draw each figure through :func:`draw_figure`, which reads those
tables back from the run's folder; ``make figures`` (:func:`redraw_all`) draws through the same entries, for
every run of a profile. So the figure a notebook shows is exactly the one a redraw makes. A figure's files are
``figures/<stem>_<profile>_<run>.pdf`` and ``.png``: runs of other backbones or settings never overwrite it.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..data.benchmark_data import Benchmark, load_benchmark
from ..data.reported_results import paper_results, reported_detectors
from ..evaluation.fine_grained import missing_images
from ..results import ResultTableError, Run, history_table, load_table, runs_of, sweeps_of
from . import fine_grained_plots, head_plots, sweep_plots, umap_plots
from .style import apply_paper_style, save_figure


@dataclass
class FigureContext:
    """What a figure is drawn from: a run's cached result tables and, for crops, its test benchmark."""

    run: Run
    benchmark: Benchmark | None = None  # the test benchmark, loaded from the cache when first needed
    _tables: dict = field(default_factory=dict, repr=False)

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            self._tables[name] = load_table(name, self.run)
        return self._tables[name]

    def test_benchmark(self) -> Benchmark:
        if self.benchmark is None:
            self.benchmark = load_benchmark(self.run.profile_object(), "test", ["hard"])
        return self.benchmark

    @property
    def disclaimer(self) -> str:
        """The profile's disclaimer and, when the run ranked annotations without their image, how many: under
        every figure of the run."""
        return "; ".join(p for p in (self.run.profile_object().disclaimer, self._missing_images()) if p)

    def _missing_images(self) -> str:
        try:
            rows = self.table("nb04_vanilla" if self.run.is_sweep else "nb01_vanilla_clip")
        except (FileNotFoundError, ResultTableError):
            return ""
        missing, total = missing_images(rows)
        return f"{missing} of {total} test annotations ({missing / total:.1%}) without their image" if missing else ""


@dataclass(frozen=True)
class FigureSpec:
    stem: str  # file name without run and extension
    notebook: str  # the notebook that makes its tables
    tables: tuple[str, ...]  # result tables it reads ("nb02_history" stands for every head's history)
    draw: Callable[[FigureContext], plt.Figure]
    scope: str = "run"  # "run": drawn per backbone run (notebooks 01-03); "sweep": per sweep (notebook 04)


def _split_mean_rank(ctx: FigureContext) -> plt.Figure:
    return fine_grained_plots.plot_split_mean_rank(ctx.table("nb01_vanilla_clip"), reported_detectors(),
                                                   ctx.disclaimer)


def _clip_vs_detectors(ctx: FigureContext) -> plt.Figure:
    disclaimer = ctx.disclaimer and f"{ctx.disclaimer}; the detectors too are random-init tiny models"
    return fine_grained_plots.plot_split_mean_rank(
        ctx.table("nb01_clip_vs_detectors"), None, disclaimer,
        title="CLIP on object crops beside the detectors built on it: mean rank of the positive among N")


def _failures_hard(ctx: FigureContext) -> plt.Figure:
    worst = ctx.table("nb01_failures_hard")
    bench = ctx.test_benchmark()
    scale = float(worst["scale_factor"].iloc[0]) if len(worst) else ctx.run.profile_object().extract.scale_factor
    return fine_grained_plots.plot_failure_gallery(bench.splits["hard"], bench.image_root, worst, scale,
                                                   ctx.disclaimer)


def _ours(ctx: FigureContext) -> pd.DataFrame:
    table = ctx.table("nb02_paper_heads")
    return table[table["origin"] == "this run"]


def _fg_vs_coco(ctx: FigureContext) -> plt.Figure:
    return head_plots.plot_fg_vs_coco(_ours(ctx), paper_results("B"), ctx.disclaimer)


def _heads_per_split(ctx: FigureContext) -> plt.Figure:
    ours = _ours(ctx)
    return head_plots.plot_heads_per_split(ours[ours["stage"].isin(["vanilla", "fg-ovd"])], ctx.disclaimer,
                                           n_of=ctx.run.profile_object().paper_n)


def _paper_training(ctx: FigureContext) -> plt.Figure:
    ours = _ours(ctx)
    histories = {}
    seeds = ours["seed"].nunique() if "seed" in ours else 1
    for _, r in ours[ours["stage"] != "vanilla"].iterrows():
        recipe, seed = r.get("recipe", ""), r.get("seed")
        name = f"{r['kind']} / {r['stage']}" + (f" seed {int(seed)}" if seeds > 1 else "") + \
            (" (as-run)" if recipe == "as-run" else "")
        try:
            histories[name] = ctx.table(history_table(r["kind"], r["stage"], recipe, seed))
        except FileNotFoundError:
            continue  # a stage that started from a released head has no history
    return head_plots.plot_paper_training(histories, ctx.disclaimer)


def _study_heads(ctx: FigureContext) -> plt.Figure:
    table = ctx.table("nb02_study_heads")
    return head_plots.plot_study_heads(table, table["method"].iloc[0], "hard", ctx.disclaimer)


def _umap_attributes(ctx: FigureContext) -> plt.Figure:
    sep = ctx.table("nb03_separability")
    attributes = list(dict.fromkeys(sep["attribute"]))
    return umap_plots.plot_umap_grid(ctx.table("nb03_umap"), attributes, sep, ctx.disclaimer)


def _separability(ctx: FigureContext) -> plt.Figure:
    return umap_plots.plot_separability(ctx.table("nb03_separability"), "knn_acc", ctx.disclaimer)


def _attribute_confusion(ctx: FigureContext) -> plt.Figure:
    return umap_plots.plot_attribute_confusion(ctx.table("nb03_confusion"), ctx.disclaimer)


def _sweep_heatmap(ctx: FigureContext) -> plt.Figure:
    return sweep_plots.plot_sweep_heatmap(ctx.table("nb04_vanilla"), ctx.table("nb04_backbones"), ctx.disclaimer,
                                          n_of=ctx.run.profile_object().paper_n)


def _sweep_size(ctx: FigureContext) -> plt.Figure:
    return sweep_plots.plot_sweep_size(ctx.table("nb04_vanilla"), ctx.table("nb04_backbones"), ctx.disclaimer)


def _sweep_head_gain(ctx: FigureContext) -> plt.Figure:
    return sweep_plots.plot_head_gain(ctx.table("nb04_heads"), ctx.table("nb04_backbones"), ctx.disclaimer)


FIGURES: dict[str, FigureSpec] = {spec.stem: spec for spec in (
    FigureSpec("fig01_split_mean_rank", "01", ("nb01_vanilla_clip",), _split_mean_rank),
    FigureSpec("fig02_failures_hard", "01", ("nb01_failures_hard",), _failures_hard),
    FigureSpec("fig01b_clip_vs_detectors", "01", ("nb01_clip_vs_detectors",), _clip_vs_detectors),
    FigureSpec("fig03_fg_vs_coco", "02", ("nb02_paper_heads",), _fg_vs_coco),
    FigureSpec("fig04_heads_per_split", "02", ("nb02_paper_heads",), _heads_per_split),
    FigureSpec("fig05_paper_training", "02", ("nb02_paper_heads", "nb02_history"), _paper_training),
    FigureSpec("fig06_study_heads", "02", ("nb02_study_heads",), _study_heads),
    FigureSpec("fig07_umap_attributes", "03", ("nb03_separability", "nb03_umap"), _umap_attributes),
    FigureSpec("fig08_separability", "03", ("nb03_separability",), _separability),
    FigureSpec("fig08b_attribute_confusion", "03", ("nb03_confusion",), _attribute_confusion),
    FigureSpec("fig09_sweep_heatmap", "04", ("nb04_vanilla", "nb04_backbones"), _sweep_heatmap, "sweep"),
    FigureSpec("fig10_sweep_size", "04", ("nb04_vanilla", "nb04_backbones"), _sweep_size, "sweep"),
    FigureSpec("fig11_sweep_head_gain", "04", ("nb04_heads", "nb04_backbones"), _sweep_head_gain, "sweep"),
)}


def figure_tag(run: Run) -> str:
    return f"{run.profile}_{run.name}"


def draw_figure(stem: str, run: Run, *, benchmark: Benchmark | None = None,
                out_dir: str | os.PathLike | None = None, verbose: bool = True) -> plt.Figure:
    """Draw figure ``stem`` of ``run`` (a sweep for notebook 04's figures) from
    its cached result tables and save it as PDF and PNG.

    ``benchmark`` is the test benchmark when the caller already has it (the failure gallery needs its crops).
    """
    if stem not in FIGURES:
        raise KeyError(f"unknown figure {stem!r}; expected one of {list(FIGURES)}")
    scope = "sweep" if run.is_sweep else "run"
    if FIGURES[stem].scope != scope:
        raise ValueError(f"figure {stem!r} is drawn per {FIGURES[stem].scope}, not per {scope}")
    apply_paper_style()
    fig = FIGURES[stem].draw(FigureContext(run, benchmark))
    save_figure(fig, stem, figure_tag(run), out_dir, verbose=verbose)
    return fig


def redraw_all(profile: str, out_dir: str | os.PathLike | None = None) -> tuple[list[Path], list[str]]:
    """Redraw every registered figure of every run and sweep of ``profile``; return the saved paths and why any
    was skipped (a table not made yet, or damaged)."""
    saved, skipped = [], []
    apply_paper_style()
    runs, sweeps = runs_of(profile, unreadable=skipped), sweeps_of(profile, unreadable=skipped)
    if not runs and not sweeps:
        skipped.append(f"no results of profile {profile!r} yet: run notebooks 01-04 first")
    for run in [*runs, *sweeps]:
        ctx = FigureContext(run)
        scope = "sweep" if run.is_sweep else "run"
        for stem, spec in FIGURES.items():
            if spec.scope != scope:
                continue
            try:
                fig = spec.draw(ctx)
            except (FileNotFoundError, ResultTableError) as exc:
                skipped.append(f"{run.name} {stem}: {exc} (notebook {spec.notebook})")
                continue
            saved.extend(save_figure(fig, stem, figure_tag(run), out_dir))
            plt.close(fig)
    return saved, skipped
