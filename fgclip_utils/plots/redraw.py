"""Redraw every paper figure from the result tables the notebooks cached: no model, no training.

    python -m fgclip_utils.plots.redraw --profile smoke      (or: make figures PROFILE=full)

Every run of the profile (backbone and settings) is redrawn; a figure whose table is missing is skipped with
the notebook to run first.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..profiles import get_profile
from .figures import redraw_all


def redraw(profile: str, out_dir: str | Path | None = None) -> tuple[list[Path], list[str]]:
    """Redraw all figures of ``profile``; return the saved paths and the reasons for any skipped."""
    return redraw_all(get_profile(profile).name, out_dir)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=None, help="smoke or full (default: $FGCLIP_PROFILE, else smoke)")
    ap.add_argument("--out", default=None, help="output folder (default: figures/ or $FGCLIP_FIGURES)")
    args = ap.parse_args(argv)
    return redraw_and_report(get_profile(args.profile).name, args.out)


def redraw_and_report(profile: str, out_dir: str | Path | None = None) -> int:
    """Redraw all figures of ``profile``, print what was saved and skipped; 0 if anything was drawn, else 1."""
    saved, skipped = redraw(profile, out_dir)
    for path in saved:
        print("saved", path)
    for reason in skipped:
        print("skipped", reason)
    return 0 if saved else 1


if __name__ == "__main__":
    raise SystemExit(main())
