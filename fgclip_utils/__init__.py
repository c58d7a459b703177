"""fgclip: is CLIP the main roadblock for fine-grained open-world perception? The study's library.

Everything a notebook or a user calls is importable from here (``import fgclip_utils as fg``); the
subpackages group the code by role: :mod:`~fgclip_utils.data`, :mod:`~fgclip_utils.extraction`,
:mod:`~fgclip_utils.heads`, :mod:`~fgclip_utils.evaluation`, :mod:`~fgclip_utils.plots`.
"""
# settings, caches and result tables
from .cache import CACHE_FOLDERS, cache_folder, cache_root
from .profiles import PROFILES, DataConfig, ExtractConfig, Profile, TrainConfig, get_profile
from .results import RESULT_TABLES, acc_columns, history_table, load_table, save_table
from .notebook import Session, Timer, start
from .environment import cache_usage, environment_report, environment_table

# data
from .data.assets import ASSETS, Asset
from .data.download import DownloadError, download_file, download_many
from .data.fgovd import ATTRIBUTE_SPLITS, DIFFICULTY_SPLITS, SPLITS, Annotation, Split, load_split
from .data.synthetic import make_benchmark
from .data.coco_images import crop, crop_box, fetch_images, image_path
from .data.benchmark_data import Benchmark, benchmark_overview, download_split, load_benchmark
from .data.coco_captions import CaptionSet, coarse_caption_set, load_karpathy
from .data.reported_results import FGOVD_CITATION, reported_detectors

# extraction
from .extraction.clip_models import TINY_MODEL, ClipBundle, default_device, load_clip
from .extraction.clip_forward import encode_texts
from .extraction.embedding_cache import (CaptionEmbeddings, SplitEmbeddings, embed_benchmark, embed_caption_set,
                                         embed_split, embed_splits)

# heads
from .heads.architectures import HEAD_KINDS, SimilarityHead, build_head
from .heads.fgclip_checkpoints import FGCLIP_CHECKPOINTS, download_fgclip_checkpoint, load_fgclip_checkpoint
from .heads.training import TrainResult, train_head
from .heads.study_recipe import checkpoint_path, coarse_training_pairs, load_or_train_head, training_data

# evaluation
from .evaluation.ranking import rank_positive, summarize
from .evaluation.fine_grained import evaluate_methods, evaluate_split, evaluate_splits
from .evaluation.retrieval import retrieval_recalls
from .evaluation.method_results import method_row, methods_table
from .evaluation.attributes import ATTRIBUTE_TYPES, attribute_labels, attribute_sample
from .evaluation.separability import embedding_spaces, separability, separability_table

# plots
from .plots.style import apply_paper_style, save_figure
from .plots.figures import FIGURES, draw_figure
from .plots.fine_grained_plots import failures
from .plots.umap_plots import umap_table
from .plots.explorer import annotation_scores, make_explorer

import types as _types

__all__ = sorted(name for name, value in globals().items()
                 if not name.startswith("_") and not isinstance(value, _types.ModuleType))
