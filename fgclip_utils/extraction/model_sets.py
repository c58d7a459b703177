"""Named panels of open_clip backbones for sweeps, and how a command line's backbone arguments become a list.

A panel (:data:`MODEL_SETS`) is a tuple of (open_clip model name, pretrained tag) pairs with the family the
weights come from. ``tiny`` is three random-init configs of different widths, for the smoke profile and tests
only: its numbers say nothing about CLIP. Every other panel names released weights that open_clip downloads
on first use (:func:`panel_table` gives their sizes).
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..profiles import backbone_label
from .clip_models import parameter_counts

TINY_MODELS = ("fgclip-tiny", "fgclip-tiny-w128", "fgclip-tiny-w192")


@dataclass(frozen=True)
class Backbone:
    model: str  # open_clip model name
    pretrained: str | None  # pretrained tag or weights file; None: random init
    family: str = ""  # where the weights come from (training data)

    @property
    def label(self) -> str:
        return backbone_label(self.model, self.pretrained, full_path=True)


@dataclass(frozen=True)
class ModelSet:
    name: str
    description: str
    backbones: tuple[Backbone, ...]

    def pairs(self) -> tuple[tuple[str, str | None], ...]:
        return tuple((b.model, b.pretrained) for b in self.backbones)


def _b(model: str, pretrained: str | None, family: str) -> Backbone:
    return Backbone(model, pretrained, family)


OPENAI = (_b("ViT-B-32", "openai", "OpenAI WIT-400M"), _b("ViT-B-16", "openai", "OpenAI WIT-400M"),
          _b("ViT-L-14", "openai", "OpenAI WIT-400M"), _b("ViT-L-14-336", "openai", "OpenAI WIT-400M"))
LAION = (_b("ViT-B-32", "laion2b_s34b_b79k", "LAION-2B"), _b("ViT-B-16", "laion2b_s34b_b88k", "LAION-2B"),
         _b("ViT-L-14", "laion2b_s32b_b82k", "LAION-2B"), _b("ViT-H-14", "laion2b_s32b_b79k", "LAION-2B"))
DATACOMP = (_b("ViT-B-32", "datacomp_xl_s13b_b90k", "DataComp-1B"),
            _b("ViT-B-16", "datacomp_xl_s13b_b90k", "DataComp-1B"),
            _b("ViT-L-14", "datacomp_xl_s13b_b90k", "DataComp-1B"))
METACLIP = (_b("ViT-B-32", "metaclip_fullcc", "MetaCLIP 2.5B"), _b("ViT-B-16", "metaclip_fullcc", "MetaCLIP 2.5B"),
            _b("ViT-L-14", "metaclip_fullcc", "MetaCLIP 2.5B"), _b("ViT-H-14", "metaclip_fullcc", "MetaCLIP 2.5B"))
DFN = (_b("ViT-B-16", "dfn2b", "DFN-2B"), _b("ViT-L-14", "dfn2b", "DFN-2B"), _b("ViT-H-14", "dfn5b", "DFN-5B"))
SIGLIP = (_b("ViT-B-16-SigLIP", "webli", "SigLIP WebLI"), _b("ViT-B-16-SigLIP2", "webli", "SigLIP 2 WebLI"))
EVA = (_b("EVA02-B-16", "merged2b_s8b_b131k", "EVA02 Merged-2B"), _b("EVA02-L-14", "merged2b_s4b_b131k",
                                                                      "EVA02 Merged-2B"))
TINY = tuple(_b(name, None, "random init (smoke only)") for name in TINY_MODELS)


def _small(panel) -> tuple[Backbone, ...]:
    return tuple(b for b in panel if b.model.startswith(("ViT-B-", "EVA02-B-")))


_ALL = OPENAI + LAION + DATACOMP + METACLIP + DFN + SIGLIP + EVA
MODEL_SETS: dict[str, ModelSet] = {s.name: s for s in (
    ModelSet("tiny", "three random-init tiny configs of widths 64, 128 and 192 (smoke profile and tests only)", TINY),
    ModelSet("openai", "OpenAI CLIP: B/32, B/16 (the paper's), L/14, L/14 at 336 px", OPENAI),
    ModelSet("laion", "OpenCLIP on LAION-2B: B/32, B/16, L/14, H/14", LAION),
    ModelSet("datacomp", "OpenCLIP on DataComp-1B: B/32, B/16, L/14", DATACOMP),
    ModelSet("metaclip", "MetaCLIP (2.5B pairs): B/32, B/16, L/14, H/14", METACLIP),
    ModelSet("dfn", "Apple DFN: B/16 and L/14 on DFN-2B, H/14 on DFN-5B", DFN),
    ModelSet("siglip", "Google SigLIP and SigLIP 2, B/16 at 224 px (needs the 'siglip' extra)", SIGLIP),
    ModelSet("eva", "EVA02-CLIP B/16 and L/14", EVA),
    ModelSet("all-small", "every family's B/32 and B/16 backbones", _small(_ALL)),
    ModelSet("sweep", "notebook 04's full panel: OpenAI B/32, B/16, L/14, L/14-336; LAION-2B B/32, L/14, H/14; "
             "DataComp L/14; MetaCLIP L/14; DFN H/14; SigLIP and SigLIP 2 B/16; EVA02 B/16, L/14",
             OPENAI + (LAION[0], LAION[2], LAION[3], DATACOMP[2], METACLIP[2], DFN[2]) + SIGLIP + EVA),
    ModelSet("all", "every backbone of the named panels above (tiny aside)", _ALL),
)}


def family_of(model: str, pretrained: str | None) -> str:
    """The family of a named panel's backbone, else its pretrained tag (or "random init")."""
    for s in MODEL_SETS.values():
        for b in s.backbones:
            if (b.model, b.pretrained) == (model, pretrained):
                return b.family
    return pretrained or "random init"


def _close(word: str, choices) -> str:
    matches = difflib.get_close_matches(word, list(choices), n=5, cutoff=0.4)
    return f"close matches: {matches}" if matches else f"known: {sorted(choices)}"


def model_set(name: str) -> ModelSet:
    """The panel called ``name``; ``KeyError`` listing close matches otherwise."""
    if name not in MODEL_SETS:
        raise KeyError(f"unknown model set {name!r}; {_close(name, MODEL_SETS)}")
    return MODEL_SETS[name]


RANDOM_INIT_WORDS = ("", "none", "random")  # a pretrained field meaning: no weights, random init


def _tag(text: str | None) -> str | None:
    return None if text is None or text.strip().lower() in RANDOM_INIT_WORDS else text.strip()


def read_models_file(path: str | os.PathLike) -> list[tuple[str, str | None]]:
    """Backbones from a text file: one ``model,pretrained`` (or ``model pretrained``; ``model`` alone, or a
    pretrained of ``none``, for random init) per line, ``#`` comments and blank lines ignored. ``ValueError``
    names the file and line."""
    path = Path(path)
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the models file ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: the models file is not UTF-8 text (byte {exc.start})") from exc
    pairs = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [p.strip() for p in text.replace(",", " ").split()]
        if len(parts) > 2:
            raise ValueError(f"{path}, line {number}: expected 'model,pretrained', got {line.strip()!r}")
        pairs.append((parts[0], _tag(parts[1]) if len(parts) == 2 else None))
    if not pairs:
        raise ValueError(f"{path}: no backbones in the models file")
    return pairs


def resolve_backbones(models=(), pretrained=(), models_file: str | os.PathLike | None = None,
                      set_name: str | None = None) -> list[tuple[str, str | None]]:
    """The (model, pretrained) pairs a command line names: ``models`` with ``pretrained`` (as many tags as models,
    one tag for all, or none: random init), then a models file, then a named set; repeats dropped, order kept.
    Raises ``ValueError`` for arguments that do not pair up and ``KeyError`` for an unknown set."""
    models, pretrained = list(models or ()), list(pretrained or ())
    if pretrained and not models:
        raise ValueError("--pretrained needs --model")
    if pretrained and len(pretrained) not in (1, len(models)):
        raise ValueError(f"{len(models)} --model but {len(pretrained)} --pretrained: give one tag for all models "
                         "or one per model")
    tags = pretrained * len(models) if len(pretrained) == 1 else pretrained or [None] * len(models)
    pairs = [(m, _tag(t)) for m, t in zip(models, tags, strict=True)]
    if models_file is not None:
        pairs += read_models_file(models_file)
    if set_name is not None:
        pairs += list(model_set(set_name).pairs())
    if not pairs:
        raise ValueError("no backbone given: use --model (with --pretrained), --models-file or --model-set")
    return list(dict.fromkeys(pairs))


def check_backbones(pairs) -> None:
    """``ValueError`` (listing close matches) for the first pair open_clip does not know, before any download."""
    from .clip_models import check_backbone

    for model, tag in pairs:
        check_backbone(model, tag)


def panel_table(name_or_pairs, sizes: bool = True) -> pd.DataFrame:
    """One row per backbone of a panel (a set's name or (model, pretrained) pairs): family, image size, resize
    mode and, with ``sizes``, parameters and the download it costs (about 4 bytes per parameter: open_clip's
    hub files are float32)."""
    import open_clip

    if isinstance(name_or_pairs, str):
        backbones = model_set(name_or_pairs).backbones
    else:
        backbones = tuple(Backbone(m, p, family_of(m, p)) for m, p in name_or_pairs)
    rows = []
    for b in backbones:
        vision = open_clip.get_model_config(b.model)["vision_cfg"]
        size = vision.get("image_size", "")
        cfg = open_clip.get_pretrained_cfg(b.model, b.pretrained) if b.pretrained else {}
        row = {"model": b.model, "pretrained": b.pretrained or "random-init", "family": b.family,
               "image_size": size if isinstance(size, int) else "x".join(map(str, size)),
               "resize_mode": cfg.get("resize_mode", "shortest"), "normalisation":
                   "0.5" if tuple(cfg.get("mean", ())) == (0.5, 0.5, 0.5) else "OpenAI"}
        if sizes:
            total, image = parameter_counts(b.model)
            row.update(params_m=total / 1e6, image_params_m=image / 1e6,
                       download_gb=total * 4 / 1e9 if b.pretrained else 0.0)
        rows.append(row)
    return pd.DataFrame(rows)
