"""fgclip: is CLIP the main roadblock for fine-grained open-world perception? The study's library.

``import fgclip_utils as fg`` gives what a notebook needs, listed by hand in :data:`__all__` and grouped by role;
everything else is importable from its subpackage, one floor per role, each importing only the floors below it:
:mod:`~fgclip_utils.data` -> :mod:`~fgclip_utils.extraction` -> :mod:`~fgclip_utils.evaluation` ->
:mod:`~fgclip_utils.heads` -> :mod:`~fgclip_utils.results` -> :mod:`~fgclip_utils.sweep` -> :mod:`~fgclip_utils.plots`;
:mod:`~fgclip_utils.cli` is the command line (``python -m fgclip_utils``).
"""
# settings, caches, the notebook session
from .cache import CACHE_FOLDERS, cache_root
from .profiles import get_profile
from .notebook import Timer, captioned, start, with_ci
from .environment import cache_usage, environment_report, environment_table
from .colab import archive_outputs, use_drive_cache

# data
from .data.assets import ASSETS
from .data.fgovd import PAPER_N, SPLITS, load_split
from .data.synthetic import make_benchmark
from .data.benchmark_data import benchmark_overview, load_benchmark
from .data.coco_captions import coarse_caption_set
from .data.reported_results import FGOVD_CITATION, paper_results, reported_detectors

# extraction
from .extraction.clip_models import TINY_MODEL, load_clip
from .extraction.clip_forward import encode_texts
from .extraction.embedding_cache import embed_captions, embed_splits
from .extraction.detectors import DETECTORS

# evaluation
from .evaluation.ranking import fixed_n_ranks, rank_positive, summarize
from .evaluation.similarity import as_run_cosine
from .evaluation.bootstrap import bootstrap_ci, paired_bootstrap
from .evaluation.fine_grained import METRIC_NOTE, annotation_scores, evaluate_split, evaluate_splits, failures
from .evaluation.method_results import mean_rank_columns, method_row, methods_table
from .evaluation.paper_comparison import (coco_baselines, paper_layout, paper_vs_ours, released_vs_paper,
                                          seed_spread, table_b_confidence, vanilla_vs_paper)
from .evaluation.attributes import attribute_confusion, attribute_labels, attribute_sample
from .evaluation.separability import embedding_spaces, separability_table
from .evaluation.umap_projection import umap_table
from .evaluation.detector_ranking import clip_vs_detectors, detector_rank, evaluate_detectors

# heads
from .heads.architectures import HEAD_KINDS, build_head
from .heads.paper_heads import PAPER_HEAD_KINDS
from .heads.study_heads import STUDY_HEAD_KINDS
from .heads.fgclip_checkpoints import download_fgclip_checkpoint, load_fgclip_checkpoint
from .heads.training import TrainingDiverged
from .heads.study_recipe import coarse_training_pairs, load_or_train_head, study_head, training_data
from .heads.paper_recipe import (RELEASED_FINETUNED, RELEASED_WARMUP, needs_warmup, paper_head, paper_training_data,
                                 released_heads_fit, train_paper_heads)

# result tables and records
from .results import (RESULT_TABLES, Run, history_table, read_record, record_method_rows, record_split_table,
                      save_table, sweep_for, sweeps_of)

# backbone sweeps (notebook 04, the command line)
from .extraction.model_sets import model_set, panel_table, resolve_backbones
from .sweep.backbone_sweep import head_gain_row, sweep_heads, sweep_vanilla

# plots
from .plots.figures import FIGURES, draw_figure
from .plots.explorer import make_explorer

__all__ = [
    # settings, caches, the notebook session
    "CACHE_FOLDERS", "cache_root", "get_profile", "Timer", "captioned", "with_ci", "start", "cache_usage",
    "environment_report", "environment_table", "archive_outputs", "use_drive_cache",
    # data
    "ASSETS", "PAPER_N", "SPLITS", "load_split", "make_benchmark", "benchmark_overview", "load_benchmark",
    "coarse_caption_set", "FGOVD_CITATION", "paper_results", "reported_detectors",
    # extraction
    "TINY_MODEL", "load_clip", "encode_texts", "embed_captions", "embed_splits", "DETECTORS",
    # evaluation
    "fixed_n_ranks", "rank_positive", "summarize", "as_run_cosine", "bootstrap_ci", "paired_bootstrap",
    "METRIC_NOTE", "annotation_scores", "evaluate_split",
    "evaluate_splits", "failures", "mean_rank_columns", "method_row", "methods_table", "coco_baselines",
    "paper_layout", "paper_vs_ours", "seed_spread", "table_b_confidence", "released_vs_paper", "vanilla_vs_paper",
    "attribute_labels", "attribute_sample", "attribute_confusion",
    "embedding_spaces", "separability_table", "umap_table", "detector_rank",
    "evaluate_detectors", "clip_vs_detectors",
    # heads
    "HEAD_KINDS", "build_head", "PAPER_HEAD_KINDS", "STUDY_HEAD_KINDS", "download_fgclip_checkpoint",
    "load_fgclip_checkpoint", "TrainingDiverged", "coarse_training_pairs", "load_or_train_head", "study_head",
    "training_data", "RELEASED_FINETUNED", "RELEASED_WARMUP", "needs_warmup", "paper_head", "paper_training_data",
    "released_heads_fit", "train_paper_heads",
    # result tables and records
    "RESULT_TABLES", "Run", "history_table", "read_record", "record_method_rows", "record_split_table", "save_table",
    "sweep_for", "sweeps_of",
    # backbone sweeps
    "model_set", "panel_table", "resolve_backbones", "head_gain_row", "sweep_heads", "sweep_vanilla",
    # plots
    "FIGURES", "draw_figure", "make_explorer",
]
