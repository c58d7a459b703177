"""What every notebook does first, in one call: resolve the profile and the notebook's parameters, pick the
device, apply the figure style, and say which profile, backbone(s), device and data the numbers come from."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import pandas as pd
import torch

from .extraction.clip_forward import resolve_precision
from .extraction.clip_models import ClipBundle, default_device, load_clip
from .plots.style import apply_paper_style
from .profiles import Profile, backbone_label, get_profile
from .results import Run, run_for


@dataclass
class Session:
    """A notebook's resolved settings: the profile (with the notebook's overrides applied) and the device."""

    profile: Profile
    device: torch.device

    @property
    def backbone(self) -> tuple[str, str | None]:
        """The first backbone of the profile: (open_clip model name, pretrained tag or weights file)."""
        return self.profile.backbones[0]

    def load_clip(self, name: str | None = None, pretrained: str | None = None) -> ClipBundle:
        """Backbone ``name``/``pretrained`` (default: the first of the profile) on the session's device."""
        if name is None:
            name, pretrained = self.backbone
        return load_clip(name, pretrained, device=self.device)

    def run(self, bundle: ClipBundle) -> Run:
        """Where this profile's results with ``bundle`` go (see :mod:`fgclip_utils.results`)."""
        return run_for(self.profile, bundle)

    @property
    def precision(self) -> str:
        """The extraction precision on this device (e.g. ``half`` is fp16 on a GPU, fp32 on a CPU)."""
        return resolve_precision(self.device, self.profile.extract.precision)


def start(profile: str | None = None, *, backbones=None, backbone=None, device: str | torch.device | None = None,
          scale_factor: float | None = None, epochs: int | None = None, warmup_images: int | None = None,
          with_q1_backbones: bool = False, detectors=None, stage2_as_run: bool | None = None, **shown) -> Session:
    """Resolve a notebook's parameters into a :class:`Session` and print what it will run.

    ``profile`` None means ``$FGCLIP_PROFILE``, else ``smoke``. ``backbones`` (a list of (name, pretrained)) or
    ``backbone`` (one pair) replace the profile's; ``scale_factor``, ``epochs`` and ``warmup_images`` (the
    paper recipe's stage-1 images), when given, replace the profile's settings. ``with_q1_backbones`` (notebook
    01) adds the profile's :attr:`~fgclip_utils.profiles.Profile.q1_backbones` when ``backbones`` is not given;
    ``detectors`` (names of :data:`~fgclip_utils.DETECTORS`) replace the profile's. ``stage2_as_run`` sets the
    paper recipe's :attr:`~fgclip_utils.profiles.PaperRecipe.as_run`. ``shown`` are further parameters printed
    with the rest.
    """
    P = get_profile(profile)
    if backbone is not None:
        backbones = [backbone]
    if backbones:
        P = P.with_backbones(backbones)
    elif with_q1_backbones:
        P = P.with_backbones([*P.backbones, *(b for b in P.q1_backbones if b not in P.backbones)])
    if detectors is not None:
        from .extraction.detectors import spec_of

        P = replace(P, detectors=tuple(spec_of(d).name for d in detectors))
    if scale_factor is not None:
        P = replace(P, extract=replace(P.extract, scale_factor=float(scale_factor)))
    if epochs is not None:
        P = replace(P, train=replace(P.train, epochs=int(epochs)))
    if warmup_images is not None:
        P = replace(P, data=replace(P.data, warmup_images=int(warmup_images)))
    if stage2_as_run is not None:
        P = replace(P, paper=replace(P.paper, as_run=bool(stage2_as_run)))
    session = Session(P, torch.device(device) if device else default_device())
    apply_paper_style()
    names = ", ".join(backbone_label(n, p) for n, p in P.backbones)
    extra = "".join(f"  {k}={v}" for k, v in shown.items())
    print(f"profile={P.name}  backbone(s)={names}  device={session.device}  precision={session.precision}  "
          f"scale_factor={P.extract.scale_factor}{extra}")
    if P.disclaimer:
        print("NOTE:", P.disclaimer)
    return session


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def with_ci(table: pd.DataFrame, *columns: str, precision: int = 3) -> pd.DataFrame:
    """``table``'s ``columns`` (default: all) for display, each one that has a 95% interval beside it
    (``<column>_ci_low`` / ``_ci_high``) written "value [low, high]", the interval columns folded into it."""
    columns = list(columns) or [c for c in table.columns if not str(c).endswith(("_ci_low", "_ci_high"))]
    out = table[columns].copy()
    for c in columns:
        if f"{c}_ci_low" in table and f"{c}_ci_high" in table:
            out[c] = [f"{v:.{precision}f} [{lo:.{precision}f}, {hi:.{precision}f}]" if v == v else "—"
                      for v, lo, hi in zip(table[c], table[f"{c}_ci_low"], table[f"{c}_ci_high"], strict=True)]
    return out


def captioned(table: pd.DataFrame, what: str, run: Run | None = None, note: str = "", precision: int = 3):
    """``table`` for display, captioned with what it is, the run (backbone, weights, profile, settings) and a
    note (the metric, the data): every number a notebook shows says where it comes from."""
    parts = [what] + ([run.describe()] if run is not None else []) + ([note] if note else [])
    disclaimer = run.profile_object().disclaimer if run is not None else ""
    if disclaimer:
        parts.append(disclaimer.upper())
    return table.style.format(precision=precision, na_rep="—").set_caption(" · ".join(parts))
