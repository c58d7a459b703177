"""A sweep over backbones: vanilla fine-grained ranking per split and, per backbone, one head trained on that
backbone's own embeddings, on the paper's protocol (Mean Rank at N, :data:`~fgclip_utils.PAPER_N`).

Backbones are loaded a window at a time (``max_loaded``), ordered so that those with the same image size and
resize mode come together; within a window, the backbones whose transforms share their geometry are extracted
in one pass, each image decoded and each crop resized once for all of them
(:func:`~fgclip_utils.extraction.embedding_cache.embed_splits`). Every embedding lands in the shared
embedding cache under the key notebooks 01-03 use, so a backbone a notebook has seen costs nothing here, and the
other way round. A backbone that fails to load (an unknown tag, a failed download) is reported and skipped,
never silently dropped.
"""
from __future__ import annotations

import gc
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..data.benchmark_data import Benchmark, load_benchmark
from ..evaluation.fine_grained import split_table
from ..evaluation.method_results import fine_grained_row, split_results
from ..evaluation.ranking import paper_aggregate
from ..extraction.clip_models import ClipBundle, check_weights_space, load_clip
from ..extraction.crop_pipeline import shared_decode_groups
from ..extraction.embedding_cache import embed_splits
from ..extraction.model_sets import Backbone, family_of
from ..heads.paper_recipe import needs_warmup, paper_head
from ..heads.recipe_data import recipe_embeddings
from ..heads.study_recipe import load_or_train_head
from ..profiles import Profile

Pair = tuple[str, str | None]


def _order_key(pair: Pair) -> tuple:
    """Backbones likely to share a decode sort together (image size, resize mode); the true grouping is made
    from the loaded transforms."""
    import open_clip

    model, tag = pair
    try:  # an hf-hub or local-dir name, or anything unresolvable, sorts first: loading it reports the problem
        size = open_clip.get_model_config(model)["vision_cfg"].get("image_size", 0)
        mode = open_clip.get_pretrained_cfg(model, tag).get("resize_mode", "") if tag else ""
    except Exception:
        size, mode = 0, ""
    side = max(size) if isinstance(size, list | tuple) and size else size if isinstance(size, int) else 0
    return (side, mode)


def backbone_info(bundle: ClipBundle, group: int) -> dict:
    """What the sweep's size axis and tables say about a backbone."""
    total = sum(p.numel() for p in bundle.model.parameters())
    image = sum(p.numel() for p in bundle.model.visual.parameters())
    h, w = bundle.image_size
    return {"backbone": bundle.label, "model": bundle.name, "pretrained": bundle.pretrained or "random-init",
            "family": family_of(bundle.name, bundle.pretrained), "weights_id": bundle.weights_id,
            "params_m": total / 1e6, "image_params_m": image / 1e6,
            "embed_dim": bundle.embed_dim, "image_size": h if h == w else f"{h}x{w}", "decode_group": group,
            "quick_gelu": bundle.quick_gelu}


@dataclass
class Failure:
    backbone: str
    error: str
    detail: str = ""


@dataclass
class Window:
    """Backbones loaded together, with their shared-decode groups."""

    bundles: list[ClipBundle]
    groups: list[list[int]] = field(default_factory=list)


def load_windows(backbones: Sequence[Pair], *, device: str | torch.device | None = None, max_loaded: int = 4,
                 failures: list[Failure] | None = None) -> Iterator[Window]:
    """Load ``backbones`` ``max_loaded`` at a time, in an order that brings shared-decode groups together;
    a backbone that fails to load goes into ``failures`` (or raises when it is None). Each window's models are
    released before the next is loaded."""
    if max_loaded < 1:
        raise ValueError(f"max_loaded must be at least 1, got {max_loaded}")
    ordered = sorted(dict.fromkeys(tuple(b) for b in backbones), key=_order_key)
    for start in range(0, len(ordered), max_loaded):
        bundles = []
        for model, tag in ordered[start:start + max_loaded]:
            try:
                bundles.append(load_clip(model, tag, device=device))
            except Exception as exc:  # reported in failures: the sweep goes on with the others
                if failures is None:
                    raise
                failures.append(Failure(Backbone(model, tag).label, f"{type(exc).__name__}: {exc}",
                                        traceback.format_exc()))
        if bundles:
            yield Window(bundles, shared_decode_groups(bundles))
        del bundles
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@dataclass
class BackboneResult:
    """One backbone's results as the sweep hands them on (``on_backbone``): its per-split rows, vanilla and,
    in a head sweep, with the head, and the test benchmark they were measured on."""

    bundle: ClipBundle
    vanilla: pd.DataFrame
    bench: Benchmark
    head: pd.DataFrame | None = None


@dataclass
class SweepTables:
    """What a sweep measured: one row per backbone (``backbones``), per backbone and split (``vanilla``), per
    backbone with a head (``heads``), and what failed."""

    backbones: pd.DataFrame
    vanilla: pd.DataFrame
    heads: pd.DataFrame | None = None
    failures: list[Failure] = field(default_factory=list)


def _identified(rows: pd.DataFrame, bundle: ClipBundle) -> pd.DataFrame:
    """Per-split rows with the backbone they belong to as their first columns."""
    for i, (column, value) in enumerate((("backbone", bundle.label), ("model", bundle.name),
                                         ("pretrained", bundle.pretrained or "random-init"),
                                         ("weights_id", bundle.weights_id))):
        rows.insert(i, column, value)
    return rows


def _ranked(profile: Profile, bundle: ClipBundle, emb: dict, head=None) -> dict:
    """Each split ranked once by ``head`` (vanilla cosine when None), for both the per-split rows and the
    FG-OVD Mean Rank's intervals."""
    if head is not None:
        head = head.to(bundle.device).eval()
    return split_results(emb, head, device=bundle.device, n_negatives=profile.paper_n)


def sweep_vanilla(profile: Profile, backbones: Sequence[Pair], *, splits=None, device=None, max_loaded: int = 4,
                  progress: bool = True, keep_going: bool = True,
                  on_backbone: Callable[[BackboneResult], None] | None = None) -> SweepTables:
    """Vanilla CLIP's fine-grained ranking on the test ``splits`` (default: all eight) of ``profile``'s benchmark
    for every backbone: the paper's Mean Rank at N and the study's columns, one row per backbone and split.
    ``on_backbone(result)`` is called with each :class:`BackboneResult` as it is ready (the command line writes
    its records there). ``keep_going``: a backbone that fails to load is reported in ``failures`` and skipped."""
    return _sweep(profile, backbones, None, splits, device, max_loaded, progress, keep_going, on_backbone)


def head_gain_row(backbone: str, kind: str, vanilla: pd.DataFrame, head: pd.DataFrame,
                  intervals: dict | None = None) -> dict:
    """One backbone's row of the heads table from its vanilla and head per-split rows: FG-OVD Mean Rank (mean of
    the eight splits' Mean Rank at N; NaN unless all eight are there) of both, ``gain`` (vanilla minus head,
    positive is better), ``gap_closed`` (gain / (vanilla - 1): the share of the way to a perfect mean rank of 1),
    and each split's Mean Rank at N (``vanilla_mr_<split>``, ``head_mr_<split>``). ``intervals`` (``{"vanilla":
    ..., "head": ...}``, their :func:`~fgclip_utils.evaluation.method_results.fine_grained_row`) adds each fg's 95%
    interval (``vanilla_fg_ci_low`` ...) and the paired interval of the gain over the same annotations
    (``gain_ci_low`` / ``_high``, ``gain_p``)."""
    base = paper_aggregate(dict(zip(vanilla["split"], vanilla["mean_rank_at_n"], strict=True)))
    tuned = paper_aggregate(dict(zip(head["split"], head["mean_rank_at_n"], strict=True)))
    gain = base["fgovd_mean_rank"] - tuned["fgovd_mean_rank"]
    room = base["fgovd_mean_rank"] - 1
    row = {"backbone": backbone, "kind": kind, "vanilla_fg": base["fgovd_mean_rank"],
           "head_fg": tuned["fgovd_mean_rank"], "gain": gain, "gap_closed": gain / room if room > 0 else float("nan"),
           "vanilla_mean_rank_sum": base["mean_rank_sum"], "head_mean_rank_sum": tuned["mean_rank_sum"]}
    row.update({f"vanilla_mr_{s}": v for s, v in zip(vanilla["split"], vanilla["mean_rank_at_n"], strict=True)})
    row.update({f"head_mr_{s}": v for s, v in zip(head["split"], head["mean_rank_at_n"], strict=True)})
    if intervals is not None:
        for who, fine in intervals.items():
            row.update({f"{who}_fg_ci_low": fine["fg_ci_low"], f"{who}_fg_ci_high": fine["fg_ci_high"]})
        paired = intervals.get("head", {})
        if "fg_vs_vanilla" in paired:
            row.update(gain_ci_low=-paired["fg_vs_vanilla_ci_high"], gain_ci_high=-paired["fg_vs_vanilla_ci_low"],
                       gain_p=paired["fg_vs_vanilla_p"])
    return row


def train_backbone_head(profile: Profile, bundle: ClipBundle, kind: str = "paper-linear", *, loss: str = "triplet",
                        device=None, progress: bool = True):
    """``kind`` trained on ``bundle``'s own embeddings: a ``paper-*`` kind with the paper's two-stage recipe
    (both stages trained here), a study kind with the study's recipe and ``loss``. Found by key in the
    checkpoint cache when notebook 02 (or an earlier sweep) trained it already."""
    if kind.startswith("paper-"):
        return paper_head(profile, bundle, kind, warmup_start="train", device=device, progress=progress).finetune.head
    return load_or_train_head(profile, bundle, kind, loss, device=device, progress=progress)[0]


def sweep_heads(profile: Profile, backbones: Sequence[Pair], kind: str = "paper-linear", *, splits=None,
                device=None, max_loaded: int = 4, progress: bool = True, keep_going: bool = True,
                on_backbone: Callable[[BackboneResult], None] | None = None) -> SweepTables:
    """:func:`sweep_vanilla` plus, per backbone, head ``kind`` trained on its own embeddings and scored on the
    same test splits: ``heads`` has the FG-OVD Mean Rank (the mean of the eight splits' Mean Rank at N) of
    vanilla CLIP and of the head, ``gain`` (vanilla minus head: positive is better) and ``gap_closed`` (the
    gain as a share of the way from vanilla to a perfect mean rank of 1), and the per-split mean ranks.
    ``on_backbone(result)`` is called with each :class:`BackboneResult` as it is done."""
    return _sweep(profile, backbones, kind, splits, device, max_loaded, progress, keep_going, on_backbone)


def _attempt(failures: list[Failure], bundle: ClipBundle, work: Callable):
    """``work()``, or None with the failure recorded under ``bundle``'s label (the sweep goes on)."""
    try:
        return work()
    except Exception as exc:
        failures.append(Failure(bundle.label, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return None


def _sweep(profile: Profile, backbones: Sequence[Pair], kind: str | None, splits, device, max_loaded: int,
           progress: bool, keep_going: bool, on_backbone) -> SweepTables:
    """The loop of both sweeps: a window of backbones at a time, one extraction per shared-decode group, then
    each backbone's vanilla rows and, with ``kind``, its head."""
    check_weights_space(backbones)  # before any download: a full panel's weights are tens of GB
    bench = load_benchmark(profile, "test", splits)
    failures: list[Failure] = []
    info, tables, heads = [], [], []
    group_ids: dict[str, int] = {}
    windows = load_windows(backbones, device=device, max_loaded=max_loaded, failures=failures if keep_going else None)
    for window in tqdm(windows, desc="backbone windows", disable=not progress, unit="window",
                       total=-(-len(backbones) // max_loaded)):
        for group in window.groups:
            members = [window.bundles[i] for i in group]

            def extract(bundles):
                embs = embed_splits(bundles, bench, splits, extract=profile.extract, progress=progress)
                if kind is not None:  # what training the head on each reads, one decode per group
                    warmup = kind.startswith("paper-") and needs_warmup([kind], "train", bundles[0])
                    recipe_embeddings(profile, bundles, kind, with_warmup=warmup, progress=progress)
                return embs

            try:
                embs = extract(members)
            except Exception:  # one backbone's failure must not take the group's others with it
                if not keep_going:
                    raise
                embs = [_attempt(failures, b, lambda b=b: extract([b])[0]) for b in members]
            for bundle, emb in zip(members, embs, strict=True):
                if emb is None:
                    continue

                def evaluate(bundle=bundle, emb=emb):
                    plain = _ranked(profile, bundle, emb)
                    vanilla = _identified(split_table(plain, "CLIP (cosine)"), bundle)
                    fg_of = {"vanilla": fine_grained_row(emb, results=plain)}
                    head_rows = None
                    if kind is not None:
                        head = train_backbone_head(profile, bundle, kind, device=device, progress=progress)
                        tuned = _ranked(profile, bundle, emb, head)
                        head_rows = _identified(split_table(tuned, kind), bundle)
                        fg_of["head"] = fine_grained_row(emb, head, results=tuned, vanilla=plain)
                    return vanilla, head_rows, fg_of

                done = evaluate() if not keep_going else _attempt(failures, bundle, evaluate)
                if done is None:
                    continue
                vanilla, head_rows, fg_of = done
                if head_rows is not None:
                    heads.append(head_gain_row(bundle.label, kind, vanilla, head_rows, fg_of))
                info.append(backbone_info(bundle, group_ids.setdefault(bundle.pixels.key, len(group_ids)))
                            | {"vanilla_fg_ci_low": fg_of["vanilla"]["fg_ci_low"],
                               "vanilla_fg_ci_high": fg_of["vanilla"]["fg_ci_high"]})
                tables.append(vanilla)
                if on_backbone is not None:
                    on_backbone(BackboneResult(bundle, vanilla, bench, head_rows))
    frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return SweepTables(pd.DataFrame(info), frame, pd.DataFrame(heads) if kind is not None else None, failures)
