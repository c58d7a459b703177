"""fgclip: is CLIP the main roadblock for fine-grained open-world perception? The study's library.

Everything a notebook or a user calls is importable from here (``import fgclip_utils as fg``); the
subpackages group the code by role: :mod:`~fgclip_utils.data`, :mod:`~fgclip_utils.extraction`,
:mod:`~fgclip_utils.heads`, :mod:`~fgclip_utils.evaluation`, :mod:`~fgclip_utils.sweep`, :mod:`~fgclip_utils.plots`;
:mod:`~fgclip_utils.cli` is the command line (``python -m fgclip_utils``).
"""
# settings, caches and result tables
from .cache import CACHE_FOLDERS, cache_folder, cache_root
from .profiles import (PROFILES, DataConfig, ExtractConfig, PaperRecipe, Profile, StageConfig, TrainConfig,
                       get_profile)
from .results import (RECORD_FIELDS, RESULT_TABLES, ResultTableError, Run, Sweep, acc_columns, build_csv,
                      history_table, load_table, read_record, read_records, record_method_rows, record_split_table,
                      records_table, run_for, runs_of, save_table, sweep_for, sweeps_of, write_record)
from .notebook import Session, Timer, captioned, start
from .environment import cache_usage, environment_report, environment_table
from .colab import archive_outputs, in_colab, use_drive_cache

# data
from .data.assets import ASSETS, Asset
from .data.download import DownloadError, download_file, download_many, fetch_asset
from .data.fgovd import ATTRIBUTE_SPLITS, DIFFICULTY_SPLITS, SPLITS, Annotation, Split, load_split
from .data.synthetic import make_benchmark
from .data.coco_images import crop, crop_box, fetch_images, image_path
from .data.benchmark_data import Benchmark, benchmark_overview, download_split, load_benchmark
from .data.coco_captions import CaptionSet, coarse_caption_set, coco_karpathy, load_karpathy
from .data.reported_results import (FGCLIP_CITATION, FGOVD_CITATION, openclip_coco_reference, paper_results,
                                    reported_detectors)

# extraction
from .extraction.clip_models import TINY_MODEL, ClipBundle, default_device, load_clip
from .extraction.clip_forward import encode_texts
from .extraction.embedding_cache import (CaptionEmbeddings, SplitEmbeddings, embed_benchmark, embed_benchmark_many,
                                         embed_caption_set, embed_caption_set_many, embed_split, embed_splits,
                                         embed_splits_many, profile_caption_embeddings,
                                         profile_caption_embeddings_many, profile_embeddings, profile_embeddings_many)
from .extraction.crop_pipeline import shared_decode_groups

# heads
from .heads.architectures import HEAD_KINDS, build_head
from .heads.base import SimilarityHead
from .heads.paper_heads import PAPER_HEAD_KINDS
from .heads.study_heads import STUDY_HEAD_KINDS
from .heads.fgclip_checkpoints import FGCLIP_CHECKPOINTS, download_fgclip_checkpoint, load_fgclip_checkpoint
from .heads.training import TrainingDiverged, TrainResult, train_head
from .heads.study_recipe import (checkpoint_path, coarse_training_pairs, load_or_train_head, study_head,
                                 study_head_key, training_data)
from .heads.paper_recipe import (RELEASED_FINETUNED, RELEASED_WARMUP, PaperHead, needs_warmup, paper_head,
                                 paper_training_data, released_heads_fit, train_paper_heads)

# evaluation
from .evaluation.ranking import PAPER_N, fixed_n_ranks, paper_aggregate, rank_positive, summarize
from .evaluation.fine_grained import METRIC_NOTE, evaluate_methods, evaluate_split, evaluate_splits
from .evaluation.retrieval import authors_coco_recalls, retrieval_recalls
from .evaluation.method_results import RECALLS, mean_rank_columns, method_row, methods_table
from .evaluation.paper_comparison import (PAPER_METHOD, coco_baselines, paper_layout, paper_vs_ours, released_vs_paper,
                                          vanilla_vs_paper)
from .evaluation.attributes import ATTRIBUTE_TYPES, attribute_labels, attribute_sample
from .evaluation.separability import embedding_spaces, separability, separability_table

# backbone sweeps (notebook 04, the command line)
from .sweep.model_sets import MODEL_SETS, TINY_MODELS, ModelSet, model_set, panel_table, resolve_backbones
from .sweep.backbone_sweep import SweepTables, head_gain_row, sweep_heads, sweep_vanilla

# plots
from .plots.style import apply_paper_style, save_figure
from .plots.figures import FIGURES, draw_figure
from .plots.fine_grained_plots import failures
from .plots.umap_plots import umap_table
from .plots.explorer import annotation_scores, make_explorer

import types as _types

__all__ = sorted(name for name, value in globals().items()
                 if not name.startswith("_") and not isinstance(value, _types.ModuleType))
