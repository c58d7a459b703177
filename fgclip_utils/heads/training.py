"""Training a similarity head on pre-extracted embeddings held as tensors on the device.

No per-sample DataLoader: each epoch draws a seeded permutation of row indices and slices the resident
tensors batch by batch. Validation runs every epoch; the best state is kept, written at the end with its
sidecar (:mod:`~.checkpoints`) and reloaded from disk, so the returned head is exactly the saved one. A loss or
validation score that goes non-finite stops training with :class:`TrainingDiverged` before anything is saved.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..evaluation.fine_grained import evaluate_split
from ..evaluation.similarity import SimilarityHead
from ..extraction.clip_models import default_device
from ..extraction.cost_estimate import say_training_estimate
from ..extraction.embedding_cache import SplitEmbeddings
from ..profiles import TrainConfig
from .checkpoints import load_head_state, save_head
from .losses import clip_loss, infonce_loss, triplet_loss


def merge_embeddings(parts: list[SplitEmbeddings]) -> SplitEmbeddings:
    """Concatenate several splits' rows into one training set, with one shared caption table."""
    captions = sorted({c for p in parts for c in p.captions})
    index = {c: i for i, c in enumerate(captions)}
    dim = parts[0].text.shape[1]
    text = torch.empty(len(captions), dim)
    with_norms = all(p.image_norm is not None and p.text_norm is not None for p in parts)
    text_norm = torch.empty(len(captions)) if with_norms else None
    k = max(p.negatives.shape[1] for p in parts)
    positives, negatives = [], []
    for p in parts:
        remap = torch.tensor([index[c] for c in p.captions], dtype=torch.long)
        text[remap] = p.text
        if with_norms:
            text_norm[remap] = p.text_norm
        positives.append(remap[p.positive])
        neg = torch.full((len(p), k), -1, dtype=torch.long)
        valid = p.negatives >= 0
        neg[:, :p.negatives.shape[1]][valid] = remap[p.negatives[valid]]
        negatives.append(neg)
    return SplitEmbeddings(image=torch.cat([p.image for p in parts]), text=text, captions=captions,
                           image_norm=torch.cat([p.image_norm for p in parts]) if with_norms else None,
                           text_norm=text_norm,
                           positive=torch.cat(positives), negatives=torch.cat(negatives),
                           annotation_ids=torch.cat([p.annotation_ids for p in parts]),
                           n_missing_images=sum(p.n_missing_images for p in parts),
                           meta={"merged": [p.meta.get("split") for p in parts],
                                 "merged_keys": [p.meta.get("key") for p in parts]})


@dataclass
class CoarsePairs:
    """Coarse-grained (image, caption) pairs, e.g. COCO training captions, for the optional CLIP term."""

    image: torch.Tensor  # (P, d)
    text: torch.Tensor  # (P, d)
    key: str = ""  # the cache key of the embeddings they come from (part of a head's checkpoint key)


@dataclass
class TrainResult:
    head: SimilarityHead
    history: pd.DataFrame  # epoch, train_loss, val_accuracy, seconds
    best_epoch: int
    best_val_accuracy: float
    seconds: float
    checkpoint: Path
    config: dict = field(default_factory=dict)


class TrainingDiverged(RuntimeError):
    """A training loss or validation score went non-finite; nothing was saved."""


def check_finite(what: str, value: float | torch.Tensor, epoch: int, kind: str) -> None:
    finite = bool(torch.isfinite(torch.as_tensor(value)).all())
    if not finite:
        raise TrainingDiverged(f"{kind}: the {what} went non-finite at epoch {epoch}; training stopped and nothing "
                               "was saved (lower the learning rate, or check the embeddings)")


WEIGHT_LIMIT = 1e6  # |weight| above this is divergence: heads start near 1 (identity) or at ~1/sqrt(d)


def check_weights(head: torch.nn.Module, epoch: int, kind: str) -> None:
    """Stop with :class:`TrainingDiverged` when a weight went non-finite or exploded (above
    :data:`WEIGHT_LIMIT`): a saturated sigmoid keeps such a head's loss finite and its scores tied."""
    for name, param in head.named_parameters():
        if not torch.isfinite(param).all() or param.abs().max() > WEIGHT_LIMIT:
            size = float(param.detach().abs().max())
            raise TrainingDiverged(f"{kind}: weight {name!r} diverged at epoch {epoch} (largest |value| {size:.3g}); "
                                   "training stopped and nothing was saved (lower the learning rate)")


def validation_scores_finite(result) -> torch.Tensor:
    """The present (not -inf) scores of an evaluation, for :func:`check_finite`."""
    present = result.scores[~torch.isneginf(result.scores)]
    return present if present.numel() else torch.zeros(1)


def snapshot_state(head: SimilarityHead) -> dict:
    """A detached copy of ``head``'s state dict (the best epoch so far)."""
    return {k: v.detach().clone() for k, v in head.state_dict().items()}


def train_epoch(head: SimilarityHead, n_rows: int, batch_size: int, generator: torch.Generator,
                optimizer: torch.optim.Optimizer, loss_of: Callable[[torch.Tensor], torch.Tensor],
                device: torch.device) -> float:
    """One epoch: the rows in a permutation drawn from ``generator``, one optimizer step per batch of row indices
    (``loss_of(idx)`` is the batch's loss); returns the mean batch loss, summed on the device so that no step
    waits for it."""
    head.train()
    perm = torch.randperm(n_rows, generator=generator).to(device)
    total, batches = torch.zeros((), device=device), 0
    for s in range(0, len(perm), batch_size):
        loss = loss_of(perm[s:s + batch_size])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, batches = total + loss.detach(), batches + 1
    return float(total) / max(1, batches)


def batch_loss(head: SimilarityHead, image: torch.Tensor, text: torch.Tensor, positive: torch.Tensor,
               negatives: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The fine-grained loss of one batch (rows already on the device)."""
    b, k = negatives.shape
    mask = negatives >= 0
    neg_text = text[negatives.clamp(min=0)]  # (B, K, d)
    neg = head.score(image[:, None].expand(-1, k, -1).reshape(b * k, -1), neg_text.reshape(b * k, -1)).view(b, k)
    if cfg.loss == "triplet":
        pos = head.score(image, text[positive])
        return triplet_loss(pos, neg, mask, cfg.margin, cfg.violation)
    in_batch = head.similarity_matrix(image, text[positive])
    return infonce_loss(in_batch, neg, mask, cfg.temperature, positive[:, None] == positive[None, :])


def train_head(head: SimilarityHead, train: SplitEmbeddings, val: SplitEmbeddings, cfg: TrainConfig,
               checkpoint: str | os.PathLike, device: str | torch.device | None = None,
               coarse: CoarsePairs | None = None, progress: bool = True, desc: str | None = None,
               key: str = "") -> TrainResult:
    """Train ``head`` with AdamW and early stopping on validation accuracy; return it at its best epoch, saved
    to ``checkpoint`` with ``key`` (see :func:`~.study_recipe.checkpoint_path`) in its sidecar."""
    device = torch.device(device) if device else default_device()
    checkpoint = Path(checkpoint)
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # dropout
    head = head.to(device)
    train_image, train_text = train.inputs(head.input_space)
    image, text = train_image.to(device), train_text.to(device)
    positive, negatives = train.positive.to(device), train.negatives.to(device)
    use_coarse = coarse is not None and cfg.coarse_weight > 0
    if use_coarse:
        coarse_img, coarse_txt = coarse.image.to(device), coarse.text.to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    kind = getattr(head, "kind", "head")

    def step_loss(idx: torch.Tensor) -> torch.Tensor:
        loss = batch_loss(head, image[idx], text, positive[idx], negatives[idx], cfg)
        if use_coarse:
            pick = torch.randint(len(coarse_img), (len(idx),), generator=generator).to(device)
            loss = loss + cfg.coarse_weight * clip_loss(
                head.similarity_matrix(coarse_img[pick], coarse_txt[pick]), cfg.temperature)
        return loss

    def validate(epoch: int) -> float:
        head.eval()
        result = evaluate_split(val, head.score, device=device)
        check_finite("validation score", validation_scores_finite(result), epoch, kind)
        head.train()
        return result.summary["accuracy"]

    best_acc, best_epoch, stale, rows = validate(0), 0, 0, []
    rows.append({"epoch": 0, "train_loss": float("nan"), "val_accuracy": best_acc, "seconds": 0.0})
    best_state = snapshot_state(head)
    say_training_estimate(head, step_loss, len(train), cfg.batch_size, cfg.epochs, device,
                          desc or f"{kind}/{cfg.loss}", n_val=len(val), generator=generator, early_stopping=True)
    start = time.perf_counter()
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc or f"{getattr(head, 'kind', 'head')}/{cfg.loss}",
               disable=not progress, unit="epoch")
    for epoch in bar:
        mean_loss = train_epoch(head, len(train), cfg.batch_size, generator, opt, step_loss, device)
        check_finite("training loss", mean_loss, epoch, kind)
        check_weights(head, epoch, kind)
        acc = validate(epoch)
        rows.append({"epoch": epoch, "train_loss": mean_loss, "val_accuracy": acc,
                     "seconds": time.perf_counter() - start})
        bar.set_postfix(loss=f"{mean_loss:.4f}", val_acc=f"{acc:.3f}")
        if acc > best_acc:
            best_acc, best_epoch, stale = acc, epoch, 0
            best_state = snapshot_state(head)
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    seconds = time.perf_counter() - start
    head.load_state_dict(best_state)
    save_head(checkpoint, head, key, config=asdict(cfg), best_epoch=best_epoch, best_val_accuracy=best_acc)
    head = load_head_state(checkpoint, head, key).to(device)
    return TrainResult(head=head, history=pd.DataFrame(rows), best_epoch=best_epoch, best_val_accuracy=best_acc,
                       seconds=seconds, checkpoint=checkpoint, config=asdict(cfg))
