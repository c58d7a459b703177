"""One place for the paper figure style (fonts, sizes, palette) and for saving figures as PDF + PNG."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import seaborn as sns

from ..atomic_io import atomic_path
from ..cache import figures_dir

PALETTE = sns.color_palette("colorblind")
FULL_WIDTH = 7.0  # inches, a two-column paper's text width


def apply_paper_style() -> None:
    """Seaborn's paper context with a white grid, readable sizes and vector-friendly fonts."""
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.1)
    mpl.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight", "pdf.fonttype": 42, "ps.fonttype": 42,
        "axes.titleweight": "bold", "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
        "legend.title_fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False,
        "axes.spines.right": False, "figure.constrained_layout.use": True,
    })


def mark_profile(fig: plt.Figure, disclaimer: str) -> None:
    """Print the profile's disclaimer under the figure, so no synthetic number passes for a real one."""
    if disclaimer:
        fig.text(0.5, -0.01, disclaimer, ha="center", va="top", fontsize=8, color="#b22222", style="italic")


def save_figure(fig: plt.Figure, stem: str, tag: str, out_dir: str | os.PathLike | None = None,
                verbose: bool = False) -> list[Path]:
    """Save ``fig`` as ``<stem>_<tag>.pdf`` and ``.png`` (atomically; ``tag`` starts with the profile, e.g.
    ``smoke_fgclip-tiny-random0``) and return both paths; ``verbose`` prints where they went."""
    out_dir = Path(out_dir) if out_dir else figures_dir()
    paths = []
    for ext in ("pdf", "png"):
        dest = out_dir / f"{stem}_{tag}.{ext}"
        with atomic_path(dest) as tmp:
            # no creation date in the PDF: the same figure gives the same file
            fig.savefig(tmp, format=ext, metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(dest)
    if verbose:
        print("saved", *[p.name for p in paths], "in", out_dir)
    return paths
