"""The paper's two-stage training recipe for its heads (FG-CLIP ``configs/train/{triplet,fg-ovd}.yaml`` and
``src/train_util.py``; STUDY.md 7.2), on pre-extracted raw CLIP embeddings held on the device.

- Stage 1, warm-up (``triplet.yaml``): COCO Karpathy train + restval, one sample per caption (5 per image);
  :func:`~.losses.warmup_hinge` on each batch's B x B score matrix, margin 0.2; lr 5e-5; validation on Karpathy
  val. Heads start from PyTorch's default random init.
- Stage 2, fine-tune (``fg-ovd.yaml``): from the stage-1 weights (or the authors' released ``triplet_*`` ones),
  on the FG-OVD Hard training set, rows with fewer than 10 negatives dropped; :func:`~.losses.anchored_hinge`
  over each row's 10 negatives, margin 0.05; lr 1e-5; validation on the Hard validation set, filtered alike.
- Both: the head's sigmoid scores, ``torch.optim.Adam`` (default betas, no weight decay, no scheduler), batch
  256, shuffled with seed 123, 10 epochs; epoch 0 only evaluates; the kept model is the epoch >= 1 with the
  lowest validation loss (first of equals), with no early stop. A batch's loss is summed, not averaged; an
  epoch's loss is the mean of its batches'.

Differences from the authors' run, all small: the shuffling order (their DataLoader drew from the global RNG),
the heads' random initialisation (seeded here, not there), and the caption order inside the validation set (it
only changes which captions share a validation batch).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..cache import cache_folder
from ..evaluation.ranking import rank_positive, summarize
from ..evaluation.similarity import SimilarityHead
from ..extraction.clip_models import ClipBundle, default_device
from ..extraction.cost_estimate import say_training_estimate
from ..extraction.embedding_cache import CaptionEmbeddings, SplitEmbeddings
from ..profiles import Profile, StageConfig
from .checkpoints import checkpoint_key, read_sidecar, save_head, train_or_load
from .fgclip_checkpoints import download_fgclip_checkpoint, load_fgclip_checkpoint
from .losses import anchored_hinge, warmup_hinge
from .paper_heads import PAPER_HEAD_KINDS, PAPER_HEADS, PaperMLPs, build_paper_head
from .recipe_data import recipe_embeddings
from .study_recipe import backbone_folder
from .training import TrainingDiverged, check_finite, check_weights, snapshot_state, train_epoch

RECIPE_VERSION = 1
FINETUNE_NEGATIVES = 10  # stage-2 rows need at least this many negatives; the loss uses the first 10
AS_RUN_SUFFIX = "|as-run caption normalisation"  # in the key of stage-2 data scored as the authors' training did


@dataclass
class PairData:
    """Stage-1 samples: caption j pairs with image ``owner[j]`` (embeddings in the head's input space)."""

    image: torch.Tensor  # (I, d)
    text: torch.Tensor  # (P, d), one row per caption
    owner: torch.Tensor  # (P,) image index of each caption
    key: str = ""

    def __len__(self) -> int:
        return len(self.text)

    @classmethod
    def from_captions(cls, emb: CaptionEmbeddings, space: str = "raw") -> PairData:
        image, text = emb.inputs(space)
        return cls(image, text, emb.caption_set.caption_image.long(), getattr(emb, "key", ""))

    def to(self, device) -> PairData:
        return PairData(self.image.to(device), self.text.to(device), self.owner.to(device), self.key)

    def batch_scores(self, head: SimilarityHead, idx: torch.Tensor) -> torch.Tensor:
        return head.similarity_matrix(self.image[self.owner[idx]], self.text[idx])


@dataclass
class RowData:
    """Stage-2 samples: crop ``image[r]`` against captions ``text[candidates[r]]`` (positive first, then 10)."""

    image: torch.Tensor  # (R, d)
    text: torch.Tensor  # (C, d)
    candidates: torch.Tensor  # (R, 1 + N)
    key: str = ""
    as_run: bool = False  # score a cosine paper head as the authors' stage 2 did (PaperMLPs.row_scores_as_run)

    def __len__(self) -> int:
        return len(self.image)

    @classmethod
    def from_split(cls, emb: SplitEmbeddings, space: str = "raw", n: int = FINETUNE_NEGATIVES,
                   as_run: bool = False) -> RowData:
        """The rows with at least ``n`` negatives, each with its first ``n`` (as the authors' dataset keeps);
        ``as_run`` scores them in training and validation as the authors' code did (part of the data's key)."""
        image, text = emb.inputs(space)
        cand = emb.candidates()
        kept = (cand[:, 1:] >= 0).sum(dim=1) >= n
        return cls(image[kept], text, cand[kept][:, :n + 1], emb.meta.get("key", "")).with_as_run(as_run)

    def with_as_run(self, as_run: bool) -> RowData:
        """The same rows scored as the authors' stage 2 did (``as_run``) or per vector; the key says which."""
        base = self.key.removesuffix(AS_RUN_SUFFIX)
        return replace(self, as_run=as_run, key=base + (AS_RUN_SUFFIX if as_run else ""))

    def to(self, device) -> RowData:
        return replace(self, image=self.image.to(device), text=self.text.to(device),
                       candidates=self.candidates.to(device))

    def batch_scores(self, head: SimilarityHead, idx: torch.Tensor) -> torch.Tensor:
        cand = self.candidates[idx]
        if self.as_run and isinstance(head, PaperMLPs):
            return head.row_scores_as_run(self.image[idx], self.text[cand])
        b, k = cand.shape
        image = self.image[idx][:, None].expand(-1, k, -1).reshape(b * k, -1)
        return head.score(image, self.text[cand.reshape(-1)]).view(b, k)


def as_run_applies(kind: str, cosine: bool) -> bool:
    """Whether the authors' stage-2 caption normalisation changes ``kind``'s scores (their four cosine heads;
    attention and dot-product heads score the same either way)."""
    return cosine and kind in PAPER_HEADS and kind != "paper-attention"


def _stage_loss(stage: StageConfig):
    return (lambda s: warmup_hinge(s, stage.margin)) if stage.stage == "warmup" else \
        (lambda s: anchored_hinge(s, stage.margin))


@torch.no_grad()
def validation(head: SimilarityHead, data: PairData | RowData, stage: StageConfig, epoch: int = 0
               ) -> tuple[float, float]:
    """(loss, mean rank): the mean over in-order batches of each batch's summed loss, as the authors validate,
    and for stage 2 the mean rank of the positive among its 10 negatives (NaN for stage 1). A head whose every
    validation score is the same number (a saturated sigmoid: its loss stays finite at its saturation value and
    every positive ties, ranked last) stops with :class:`TrainingDiverged` naming ``epoch``."""
    head.eval()
    loss_of = _stage_loss(stage)
    losses, ranks, spread = [], [], 0.0
    for s in range(0, len(data), stage.batch_size):
        idx = torch.arange(s, min(len(data), s + stage.batch_size), device=data.text.device)
        scores = data.batch_scores(head, idx)
        losses.append(float(loss_of(scores)))
        spread = max(spread, float(scores.max() - scores.min()) if scores.numel() else 0.0)
        if isinstance(data, RowData):
            ranks.append(rank_positive(scores).cpu())
    if losses and spread == 0:
        raise TrainingDiverged(f"{head.kind} {stage.stage}: every validation score is the same number at epoch "
                               f"{epoch} (a saturated head: its loss stays at its saturation value, every positive "
                               "ties); training stopped and nothing was saved (lower the learning rate)")
    mean_rank = summarize(torch.cat(ranks))["mean_rank"] if ranks else float("nan")
    return (sum(losses) / len(losses) if losses else float("nan")), mean_rank


@dataclass
class StageResult:
    head: SimilarityHead
    stage: str
    history: pd.DataFrame  # epoch, train_loss, val_loss, val_mean_rank, seconds
    best_epoch: int
    best_val_loss: float
    seconds: float
    checkpoint: Path
    key: str = ""
    trained: bool = True  # False: loaded from a checkpoint of the same key


def train_stage(head: SimilarityHead, train: PairData | RowData, val: PairData | RowData, stage: StageConfig,
                checkpoint: str | Path, key: str, device: str | torch.device | None = None, progress: bool = True,
                desc: str | None = None) -> StageResult:
    """One stage of the paper's recipe (see the module docstring); the kept head is saved to ``checkpoint``."""
    device = torch.device(device) if device else default_device()
    head = head.to(device)
    train, val = train.to(device), val.to(device)
    generator = torch.Generator().manual_seed(stage.seed)
    optimizer = torch.optim.Adam(head.parameters(), lr=stage.lr)
    loss_of = _stage_loss(stage)
    val_loss, val_rank = validation(head, val, stage)
    check_finite("validation loss", val_loss, 0, head.kind)
    say_training_estimate(head, lambda idx: loss_of(train.batch_scores(head, idx)), len(train), stage.batch_size,
                          stage.epochs, device, desc or f"{head.kind} {stage.stage}", n_val=len(val))
    rows = [{"epoch": 0, "train_loss": float("nan"), "val_loss": val_loss, "val_mean_rank": val_rank, "seconds": 0.0}]
    best_state, best_epoch, best_loss = None, 0, float("inf")
    start = time.perf_counter()
    bar = tqdm(range(1, stage.epochs + 1), desc=desc or f"{head.kind} {stage.stage}", disable=not progress,
               unit="epoch")
    for epoch in bar:
        train_loss = train_epoch(head, len(train), stage.batch_size, generator, optimizer,
                                 lambda idx: loss_of(train.batch_scores(head, idx)), device)
        check_finite("training loss", train_loss, epoch, f"{head.kind} {stage.stage}")
        check_weights(head, epoch, f"{head.kind} {stage.stage}")
        val_loss, val_rank = validation(head, val, stage, epoch)
        check_finite("validation loss", val_loss, epoch, head.kind)
        rows.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_mean_rank": val_rank,
                     "seconds": time.perf_counter() - start})
        bar.set_postfix(train=f"{train_loss:.3g}", val=f"{val_loss:.3g}")
        if val_loss < best_loss:
            best_state = snapshot_state(head)
            best_epoch, best_loss = epoch, val_loss
    seconds = time.perf_counter() - start
    if best_state is not None:
        head.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    save_head(checkpoint, head, key, stage=asdict(stage), best_epoch=best_epoch, best_val_loss=best_loss,
              seconds=seconds, history=history.to_dict(orient="list"))
    return StageResult(head.eval(), stage.stage, history, best_epoch, best_loss, seconds, Path(checkpoint), key)


def paper_checkpoint(folder: str | Path, kind: str, stage: str, key: str) -> Path:
    return Path(folder) / f"{kind}-{stage}-{key}.pt"


def run_stage(kind: str, dim: int, stage: StageConfig, train: PairData | RowData, val: PairData | RowData, *,
              folder: str | Path, start: SimilarityHead | None = None, start_key: str = "", cosine: bool = True,
              device: str | torch.device | None = None, progress: bool = True) -> StageResult:
    """One stage for head ``kind``, or its checkpoint when one with the same key exists: the key covers the
    kind, similarity, stage settings, the training and validation data's cache keys and the starting weights."""
    key = checkpoint_key(recipe="paper", version=RECIPE_VERSION, kind=kind, cosine=cosine, stage=asdict(stage),
                         train=train.key, val=val.key, start=start_key)
    path = paper_checkpoint(folder, kind, stage.stage, key)
    def build() -> SimilarityHead:
        head = build_paper_head(kind, dim, seed=stage.seed, cosine=cosine)
        if start is not None:
            head.load_state_dict(start.state_dict())
        return head

    found, result = train_or_load(path, key, build, lambda head: train_stage(head, train, val, stage, path, key,
                                                                             device=device, progress=progress))
    if found is None:
        return result
    meta = read_sidecar(path) or {}
    return StageResult(found, stage.stage, pd.DataFrame(meta.get("history", {})), int(meta.get("best_epoch", -1)),
                       float(meta.get("best_val_loss", float("nan"))), float(meta.get("seconds", 0.0)), path, key,
                       trained=False)


def paper_checkpoints_folder(profile_name: str, backbone_folder: str) -> Path:
    """Where the paper recipe's heads of one profile and backbone live in the cache."""
    return cache_folder("checkpoints") / profile_name / backbone_folder / "paper"


# the authors' released heads, per paper kind (no attention head was released)
RELEASED_WARMUP = {"paper-linear": "triplet_linear-mlp", "paper-linear-image": "triplet_linear-mlp_te-freezed",
                   "paper-linear-text": "triplet_linear-mlp_ve-freezed", "paper-mlp": "triplet_non-linear-mlp"}
RELEASED_FINETUNED = {kind: name.replace("triplet_", "fg-ovd_", 1) for kind, name in RELEASED_WARMUP.items()}


def released_heads_fit(bundle: ClipBundle) -> bool:
    """The released heads map OpenAI ViT-B/16 embeddings: do they fit this backbone?"""
    return bundle.name.removesuffix("-quickgelu") == "ViT-B-16" and bundle.weights_id == "openai"


@dataclass
class PaperData:
    """What the recipe trains and validates on, in the paper heads' input space (raw embeddings)."""

    finetune_train: RowData
    finetune_val: RowData
    warmup_train: PairData | None = None
    warmup_val: PairData | None = None
    description: dict | None = None  # sizes and sources, for the notebook to show

    def table(self) -> pd.DataFrame:
        """What each stage trains and validates on, and how many samples: one row each."""
        return pd.DataFrame({"samples": self.description or {}}).rename_axis("data")


def paper_training_data(profile: Profile, bundle: ClipBundle, with_warmup: bool = True, progress: bool = True
                        ) -> PaperData:
    """Stage 2's FG-OVD Hard training and validation rows (only those two split files and their images are
    downloaded), and, ``with_warmup``, stage 1's caption pairs: COCO Karpathy train + restval and val in
    ``full``, the synthetic benchmark's scenes in ``smoke``."""
    emb = recipe_embeddings(profile, bundle, "paper-linear", with_warmup=with_warmup, progress=progress)
    as_run = profile.paper.as_run
    data = PaperData(RowData.from_split(emb.splits["train"]["hard"], as_run=as_run),
                     RowData.from_split(emb.splits["val"]["hard"], as_run=as_run))
    description = {"stage 2 train rows (>= 10 negatives)": len(data.finetune_train),
                   "stage 2 val rows": len(data.finetune_val)}
    for subset, captions in emb.captions.items():
        pairs = PairData.from_captions(captions)
        setattr(data, f"warmup_{subset}", pairs)
        description[f"stage 1 {subset} pairs ({captions.caption_set.name})"] = len(pairs)
    data.description = description
    return data


@dataclass
class PaperHead:
    """A paper head after both stages: the stage results (``warmup`` None when it started from a release)."""

    kind: str
    warmup: StageResult | None
    finetune: StageResult
    warmup_source: str  # "trained here" or the released file it started from
    warmup_head: SimilarityHead | None = None  # what stage 2 started from
    recipe: str = "corrected"  # stage 2 "as-run" (the authors' caption normalisation), "corrected", or "either"
    seed: int = 123  # both stages' seed


def train_paper_heads(profile: Profile, bundle: ClipBundle, data: PaperData, kinds=PAPER_HEAD_KINDS, *,
                      warmup_start: str = "train", as_run: bool | None = None, seed: int | None = None,
                      device: str | torch.device | None = None, progress: bool = True) -> dict[str, PaperHead]:
    """Both stages of the paper's recipe for each of ``kinds``, each stage from its checkpoint when one with the
    same key exists. ``warmup_start="released"`` starts stage 2 from the authors' released warm-up head where one
    exists for the kind and fits the backbone (OpenAI ViT-B/16), skipping stage 1 and its COCO images.
    ``as_run`` (default: the profile's :attr:`~fgclip_utils.profiles.PaperRecipe.as_run`) trains stage 2 with
    the authors' caption normalisation; a head it does not change (:func:`as_run_applies`) is the corrected
    one, loaded from its checkpoint, with ``recipe`` "either". ``seed`` (default the recipe's, 123: the paper's
    single run) seeds both stages' initialisation and shuffling; each seed has checkpoints of its own."""
    if warmup_start not in ("train", "released"):
        raise ValueError(f"warmup_start must be 'train' or 'released', got {warmup_start!r}")
    recipe = profile.paper
    if seed is not None:
        recipe = replace(recipe, warmup=replace(recipe.warmup, seed=int(seed)),
                         finetune=replace(recipe.finetune, seed=int(seed)))
    as_run = recipe.as_run if as_run is None else as_run
    folder = paper_checkpoints_folder(profile.name, backbone_folder(bundle))
    out = {}
    for kind in kinds:
        if warmup_start == "released" and kind in RELEASED_WARMUP and released_heads_fit(bundle):
            name = RELEASED_WARMUP[kind]
            path = download_fgclip_checkpoint(name)
            start = load_fgclip_checkpoint(path, cosine=recipe.cosine, embed_dim=bundle.embed_dim)
            warm, source, start_key = None, f"released {name}.pt", name
        else:
            if data.warmup_train is None or data.warmup_val is None:
                raise ValueError(f"{kind}: stage 1 needs its data: paper_training_data(..., with_warmup=True)")
            warm = run_stage(kind, bundle.embed_dim, recipe.warmup, data.warmup_train, data.warmup_val,
                             folder=folder, cosine=recipe.cosine, device=device, progress=progress)
            start, source, start_key = warm.head, "trained here", warm.key
        applies = as_run_applies(kind, recipe.cosine)
        train, val = (rows.with_as_run(as_run and applies) for rows in (data.finetune_train, data.finetune_val))
        fine = run_stage(kind, bundle.embed_dim, recipe.finetune, train, val, folder=folder, start=start,
                         start_key=start_key, cosine=recipe.cosine, device=device, progress=progress)
        out[kind] = PaperHead(kind, warm, fine, source, start,
                              recipe=("as-run" if as_run else "corrected") if applies else "either",
                              seed=recipe.finetune.seed)
    return out


def needs_warmup(kinds, warmup_start: str, bundle: ClipBundle) -> bool:
    """Whether any of ``kinds`` must train stage 1 (no usable released warm-up to start from); with
    ``warmup_start="released"``, says which kinds still need it (and so stage 1's COCO images) and why."""
    fits = released_heads_fit(bundle)
    need = [kind for kind in kinds if not (warmup_start == "released" and kind in RELEASED_WARMUP and fits)]
    if need and warmup_start == "released":
        why = "no released warm-up exists for them" if fits else f"the released heads do not fit {bundle.label}"
        print(f"warmup_start='released': {', '.join(need)} still train stage 1 on COCO Karpathy train + restval "
              f"({why}); leave them out of the kinds to skip stage 1 and its images")
    return bool(need)


def paper_head(profile: Profile, bundle: ClipBundle, kind: str, *, warmup_start: str = "train",
               device: str | torch.device | None = None, progress: bool = True) -> PaperHead:
    """One paper head after both stages: notebook 02's checkpoints when they exist for these settings (found
    by key), else trained here."""
    data = paper_training_data(profile, bundle, with_warmup=needs_warmup([kind], warmup_start, bundle),
                               progress=progress)
    return train_paper_heads(profile, bundle, data, [kind], warmup_start=warmup_start, device=device,
                             progress=progress)[kind]
