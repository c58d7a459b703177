"""The FG-OVD authors' rank of the positive caption for a detector (STUDY.md 7.7), so detectors and CLIP are
compared on one metric: the Mean Rank at N of :mod:`~.ranking`.

For one ground-truth box and the predictions a detector made for its vocabulary (``[positive] + negatives[:N]``):

1. class-agnostic NMS over the predictions at IoU 0.5 (their "per-category" NMS: one prediction group per
   vocabulary, every label in it treated as one class);
2. NMS again over those predictions plus the ground-truth box with score 1: the predictions the box suppresses
   overlap it by IoU > 0.5 (torchvision's NMS suppresses strictly above the threshold); the one with the
   highest confidence is the match;
3. rank = number of the match's vocabulary scores (``total_scores``) >= the positive's (index 0), ties against
   the positive; no match -> all-zero scores -> every candidate ties -> rank N + 1, the worst.

Both NMS steps are ``torchvision.ops.batched_nms``, the call the authors' ``evaluation/ranks.py`` makes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torchvision.ops import batched_nms, box_convert

from ..data.fgovd import SPLITS
from ..extraction.detectors import detect_split, load_detector
from .bootstrap import bootstrap_ci
from .ranking import chance_mean_rank, summarize

NMS_IOU = 0.5


def _as_boxes(boxes, what: str) -> torch.Tensor:
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    if boxes.numel() == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{what} must be (P, 4) boxes, got shape {tuple(boxes.shape)}")
    if not torch.isfinite(boxes).all():
        raise ValueError(f"{what} holds a non-finite coordinate")
    return boxes


def matched_prediction(gt_box_xyxy: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor,
                       iou: float = NMS_IOU) -> int | None:
    """Index (into ``boxes``) of the highest-scoring prediction the ground-truth box suppresses, or None."""
    if len(boxes) == 0:
        return None
    every = torch.cat([gt_box_xyxy[None], boxes])
    conf = torch.cat([torch.ones(1, dtype=scores.dtype), scores])
    # the box outranks every prediction: a sigmoid score of exactly 1.0 still loses the tie to it
    conf[0] = torch.finfo(conf.dtype).max
    kept = set(batched_nms(every, conf, torch.zeros(len(every), dtype=torch.int64), iou).tolist())
    suppressed = [i - 1 for i in range(1, len(every)) if i not in kept]
    if not suppressed:
        return None
    return max(suppressed, key=lambda i: (float(scores[i]), -i))


def detector_rank(gt_box_xywh: Sequence[float], pred_boxes_xyxy, pred_scores, total_scores, iou: float = NMS_IOU
                  ) -> int:
    """FG-OVD's detector rank of the positive (vocabulary index 0) for one ground-truth box.

    ``gt_box_xywh``: the annotation's COCO box (x, y, w, h) in pixels; ``pred_boxes_xyxy`` (P, 4) in pixels;
    ``pred_scores`` (P,) each box's confidence for its own label; ``total_scores`` (P, V) each box's scores over
    the whole vocabulary, index 0 the positive. 1 is best, V (= N + 1) the worst.
    """
    return rank_and_match(gt_box_xywh, pred_boxes_xyxy, pred_scores, total_scores, iou)[0]


def rank_and_match(gt_box_xywh, pred_boxes_xyxy, pred_scores, total_scores, iou: float = NMS_IOU
                   ) -> tuple[int, bool]:
    """:func:`detector_rank`, and whether a prediction overlapped the box (False: the worst rank by rule)."""
    total = torch.as_tensor(total_scores, dtype=torch.float32)
    boxes = _as_boxes(pred_boxes_xyxy, "pred_boxes_xyxy")
    scores = torch.as_tensor(pred_scores, dtype=torch.float32).reshape(-1)
    if total.ndim == 1 and len(boxes) == 1:
        total = total[None]
    if len(boxes) == 0 and total.ndim != 2:
        raise ValueError("no predictions: give total_scores the shape (0, V), so the worst rank V is known")
    if total.ndim != 2 or len(total) != len(boxes) or len(scores) != len(boxes):
        raise ValueError(f"pred_boxes_xyxy ({len(boxes)}), pred_scores ({len(scores)}) and total_scores "
                         f"{tuple(total.shape)} must describe the same predictions")
    vocabulary = total.shape[1]
    if vocabulary < 1 and len(boxes):
        raise ValueError("total_scores has no vocabulary column (index 0 is the positive)")
    gt = box_convert(_as_boxes(gt_box_xywh, "gt_box_xywh"), "xywh", "xyxy")[0]
    if len(boxes):
        keep = batched_nms(boxes, scores, torch.zeros(len(boxes), dtype=torch.int64), iou)
        boxes, scores, total = boxes[keep], scores[keep], total[keep]
    match = matched_prediction(gt, boxes, scores, iou)
    if match is None:
        return int(vocabulary), False  # all-zero scores: every candidate ties with the positive
    row = total[match]
    return int((row >= row[0]).sum()), True


def detector_split_row(predictions, method: str) -> dict:
    """One split's row of a detector's :class:`~fgclip_utils.extraction.detectors.DetectorPredictions` on CLIP's
    columns (``nb01_vanilla_clip``): the Mean Rank at N over the annotations the detector ranked; how many were
    left out and why (``too_few_negatives``, ``long_vocabulary``, ``missing_images``); ``no_overlap``, how many
    boxes no prediction overlapped (ranked worst by the protocol)."""
    ranked = [rank_and_match(*row) for row in zip(predictions.bboxes, predictions.boxes, predictions.scores,
                                                   predictions.total_scores, strict=True)]
    ranks = torch.tensor([r for r, _ in ranked], dtype=torch.int64)
    n = predictions.n_negatives
    summary = summarize(ranks)
    info = SPLITS.get(predictions.split)
    low, high = bootstrap_ci(ranks) if len(ranks) else (float("nan"), float("nan"))
    return {"method": method, "split": predictions.split, "title": info.title if info else predictions.split,
            "paper_n": n, "mean_rank_at_n": summary["mean_rank"], "mean_rank_at_n_ci_low": low,
            "mean_rank_at_n_ci_high": high, "n_kept": summary["n"],
            "chance_mean_rank_at_n": chance_mean_rank(n), "accuracy": summary["accuracy"], "mrr": summary["mrr"],
            "n": summary["n"], "no_overlap": sum(not m for _, m in ranked),
            **{k: int(v) for k, v in predictions.counts.items()}, "detector": predictions.meta.get("detector")}


def evaluate_detectors(names, bench, n_negatives: Mapping[str, int], *, device=None, progress: bool = True,
                       cache_dir=None) -> pd.DataFrame:
    """Every detector of ``names`` on every split of ``bench`` (a :class:`~fgclip_utils.data.benchmark_data.
    Benchmark`), each split against its N (``n_negatives``), as :func:`detector_split_row` rows; a detector's
    model is loaded once and freed before the next."""
    rows = []
    for name in names:
        detector = load_detector(name, device=device, cache_dir=cache_dir)
        for split_name, split in bench.splits.items():
            preds = detect_split(detector, split, bench.image_root, n_negatives[split_name],
                                 bench.available.get(split_name), cache_dir=cache_dir, progress=progress)
            rows.append({**detector_split_row(preds, detector.spec.title), "from_cache": preds.meta["from_cache"]})
        del detector
    return pd.DataFrame(rows)


def clip_vs_detectors(clip_tables, detector_table: pd.DataFrame) -> pd.DataFrame:
    """CLIP's per-split tables (``nb01_vanilla_clip``, one per backbone) and the detectors' on shared columns, with
    ``family`` saying which is which: what the paper's first figure compares."""
    columns = ["method", "split", "title", "paper_n", "mean_rank_at_n", "mean_rank_at_n_ci_low",
               "mean_rank_at_n_ci_high", "n_kept", "chance_mean_rank_at_n"]
    parts = [t[columns].assign(family="CLIP (crops)") for t in clip_tables]
    parts.append(detector_table[columns].assign(family="detector (full image)"))
    return pd.concat(parts, ignore_index=True)
