"""Result tables and evaluation records, kept per run so that runs never overwrite each other.

A :class:`Run` is one profile with one backbone (model and weights) and the settings that made its numbers. Its
name is the backbone's (``ViT-B-16-openai``), followed by ``-s<key>`` when any setting differs from the profile's
defaults (a scale factor of 1.5, a precision, a recipe change, ...). Everything a run computes lives in
``<cache>/results/<profile>/<run>/``:

- the tables behind the figures (:data:`RESULT_TABLES` is the one place that names them), each a CSV with a
  manifest (columns, rows, sha256) beside it, so a truncated or header-only table is an error, never a figure
  drawn from part of the data;
- ``records/``: one JSON record per evaluation, in the spirit of LAION's CLIP_benchmark (model, pretrained,
  dataset, task, metrics, settings, package versions, git commit, hashes of the split files).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from .atomic_io import atomic_write_bytes, atomic_write_json, sha256_json
from .cache import cache_folder
from .environment import package_versions
from .extraction.model_sets import MODEL_SETS
from .profiles import PROFILES, Profile, StageConfig, backbone_label, profile_from_settings

# name -> (what it holds, columns it must have)
RESULT_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "nb01_vanilla_clip": ("vanilla CLIP per split: the paper's mean rank at N and the study's accuracy (notebook 01)",
                          ("method", "split", "paper_n", "mean_rank_at_n", "n_kept", "accuracy", "n")),
    "nb01_clip_vs_detectors": ("CLIP on crops beside the detectors built on it: mean rank at N per split (notebook 01)",
                               ("method", "family", "split", "paper_n", "mean_rank_at_n", "n_kept")),
    "nb01_failures_hard": ("Hard-split crops whose best negative beats the positive (notebook 01)",
                           ("annotation_id", "image_id", "rank", "positive", "winner", "method", "scale_factor")),
    "nb02_paper_heads": ("the paper's heads, vanilla CLIP and the released heads, in Table B's layout (notebook 02)",
                         ("method", "stage", "kind", "fg", "mean_rank_sum", "i2t_r1", "t2i_r1")),
    "nb02_study_heads": ("the study's own heads: accuracy and mean rank per split, COCO recalls (notebook 02)",
                         ("method", "kind", "loss", "fg", "rsum")),
    "nb02_history": ("training history of one head, one table per head (notebook 02)", ("epoch",)),
    "nb03_separability": ("separability of each attribute before and after the head (notebook 03)",
                          ("stage", "modality", "attribute", "knn_acc", "probe_acc", "majority", "silhouette")),
    "nb03_umap": ("2-D UMAP coordinates with attribute labels (notebook 03)", ("stage", "modality", "x", "y")),
    "nb03_confusion": ("per attribute split, which value's negative beats each positive value, before and after "
                       "the head (notebook 03)", ("method", "attribute", "positive", "confused_with", "count",
                                                  "share")),
    "nb04_backbones": ("the sweep's backbones: size, embedding width, resolution, shared-decode group (notebook 04)",
                       ("backbone", "model", "pretrained", "family", "params_m", "image_params_m", "embed_dim",
                        "image_size")),
    "nb04_vanilla": ("vanilla CLIP per backbone and split: the paper's mean rank at N (notebook 04)",
                     ("backbone", "split", "paper_n", "mean_rank_at_n", "n_kept", "accuracy", "n")),
    "nb04_heads": ("a head trained per backbone against vanilla CLIP: FG-OVD mean rank and the gain (notebook 04)",
                   ("backbone", "kind", "vanilla_fg", "head_fg", "gain", "gap_closed")),
}


class ResultTableError(ValueError):
    """A result table that must not be used (missing, truncated, another schema); the message names the file."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-")


def run_settings(profile: Profile) -> dict:
    """Everything of ``profile`` that changes its numbers (its name, disclaimer, backbones and detectors aside)."""
    settings = asdict(profile)
    for key in ("name", "disclaimer", "backbones", "detectors", "q1_backbones"):
        settings.pop(key)
    return settings


@dataclass(frozen=True)
class Run:
    """Where one profile's results with one set of settings go: with one backbone (notebooks 01-03,
    ``<cache>/results/<profile>/<model>-<weights>[-s<key>]/``) or, given a ``panel``, a sweep over several
    (notebook 04 and ``python -m fgclip_utils evaluate``, ``.../sweep-<panel>[-s<key>]/``; each backbone's
    embeddings live in the shared embedding cache, as notebooks 01-03 make them)."""

    profile: str
    backbones: tuple[tuple[str, str | None], ...]  # (model, pretrained tag or weights file) each
    weights_id: str | None  # what identifies one backbone's weights (the tag, a file's sha256); None for a sweep
    settings: dict = field(hash=False, compare=False)
    panel: str | None = None  # a sweep's named set of MODEL_SETS, or "custom"; None for one backbone

    @property
    def is_sweep(self) -> bool:
        return self.panel is not None

    @property
    def backbone(self) -> tuple[str, str | None]:
        """The one backbone of a run (the first of a sweep)."""
        return self.backbones[0]

    @property
    def settings_key(self) -> str:
        """Empty for the profile's default settings (and, for a sweep, a named panel as it is), else a short key."""
        default = PROFILES.get(self.profile)
        defaults = default is not None and run_settings(default) == self.settings
        if not self.is_sweep:
            return "" if defaults else sha256_json(self.settings)[:8]
        named = self.panel in MODEL_SETS and MODEL_SETS[self.panel].pairs() == self.backbones
        return "" if defaults and named else sha256_json({"settings": self.settings, "backbones": self.backbones})[:8]

    @property
    def name(self) -> str:
        if self.is_sweep:
            base = f"sweep-{_slug(self.panel)}"
        else:
            weights = self.weights_id if not self.weights_id.startswith("file:") else f"file-{self.weights_id[5:17]}"
            base = _slug(f"{self.backbone[0]}-{weights}".replace("random:", "random"))
        return f"{base}-s{self.settings_key}" if self.settings_key else base

    @property
    def folder(self) -> Path:
        return cache_folder("results") / self.profile / self.name

    def profile_object(self) -> Profile:
        """The profile as this run was made (its settings applied to the named profile)."""
        return profile_from_settings(self.profile, self.settings, backbones=self.backbones)

    def save_meta(self) -> Path:
        """Record what the run is (``run.json``, a sweep's ``sweep.json``), so that it can be redrawn later from
        its folder alone."""
        return atomic_write_json(self.folder / _META[self.is_sweep], {
            "profile": self.profile, "backbones": [list(b) for b in self.backbones], "weights_id": self.weights_id,
            "settings": self.settings, "panel": self.panel})

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> Run:
        folder = Path(folder)
        path = folder / _META[(folder / _META[True]).is_file()]
        try:
            meta = json.loads(path.read_text())
            backbones = meta["backbones"] if "backbones" in meta else [meta["backbone"]]  # a record of before
            return cls(meta["profile"], tuple(tuple(b) for b in backbones), meta.get("weights_id"), meta["settings"],
                       meta.get("panel"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ResultTableError(f"{path}: not a readable run record ({exc})") from exc

    def describe(self) -> str:
        if self.is_sweep:
            what = f"{len(self.backbones)} backbones (panel {self.panel}), profile {self.profile}"
        else:
            what = f"{backbone_label(*self.backbone)}, profile {self.profile}"
        return what + (f", settings {self.settings_key} (not the profile's defaults)" if self.settings_key else "")


_META = {False: "run.json", True: "sweep.json"}


def sweep_for(profile: Profile, panel: str, backbones) -> Run:
    """The sweep of ``profile`` over ``backbones`` (pairs (model, pretrained)) called ``panel``."""
    sweep = Run(profile.name, tuple((b[0], b[1]) for b in backbones), None, run_settings(profile), panel)
    sweep.save_meta()
    return sweep


def run_for(profile: Profile, bundle) -> Run:
    """The run of ``profile`` with backbone ``bundle`` (a loaded :class:`~fgclip_utils.ClipBundle`)."""
    run = Run(profile.name, ((bundle.name, bundle.pretrained),), bundle.weights_id, run_settings(profile))
    run.save_meta()
    return run


def runs_of(profile: str, sweeps: bool = False, unreadable: list[str] | None = None) -> list[Run]:
    """The runs of ``profile`` that have results in the cache (``sweeps=True``: its sweeps), sorted by folder. A
    run whose record cannot be read raises, or, given ``unreadable``, is left out with the reason added there."""
    root = cache_folder("results") / profile
    folders = sorted(p for p in root.iterdir() if (p / _META[sweeps]).is_file()) if root.is_dir() else []
    runs = []
    for folder in folders:
        try:
            runs.append(Run.from_folder(folder))
        except ResultTableError as exc:
            if unreadable is None:
                raise
            unreadable.append(f"{folder.name}: skipped, {exc}")
    return runs


def sweeps_of(profile: str, unreadable: list[str] | None = None) -> list[Run]:
    """The sweeps of ``profile`` that have results in the cache (see :func:`runs_of`)."""
    return runs_of(profile, sweeps=True, unreadable=unreadable)


def history_table(kind: str, stage: str, recipe: str = "", seed: int | None = None) -> str:
    """Name of the training-history table of head ``kind`` at ``stage`` (a loss or a recipe stage); a paper
    head's stage 2 ``recipe`` "as-run" and a ``seed`` other than the paper's (123) each add a suffix."""
    suffix = ("-as-run" if recipe == "as-run" else "") + \
        (f"-seed{int(seed)}" if seed is not None and seed == seed and int(seed) != StageConfig.seed else "")
    return f"nb02_history_{kind}_{stage}{suffix}"


def _schema(name: str) -> tuple[str, ...]:
    base = "nb02_history" if name.startswith("nb02_history_") else name
    if base not in RESULT_TABLES:
        raise KeyError(f"unknown result table {name!r}; expected one of {sorted(RESULT_TABLES)}")
    return RESULT_TABLES[base][1]


def _folder(run: Run | str | os.PathLike) -> Path:
    return run.folder if isinstance(run, Run) else Path(run)


def table_path(name: str, run: Run | str | os.PathLike) -> Path:
    _schema(name)
    return _folder(run) / f"{name}.csv"


def _manifest(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _csv_bytes(table: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    return buf.getvalue().encode()


def save_table(table: pd.DataFrame, name: str, run: Run | str | os.PathLike) -> Path:
    """Write ``table`` (it must have the columns its name requires) and its manifest, both atomically."""
    missing = [c for c in _schema(name) if c not in table.columns]
    if missing:
        raise ResultTableError(f"table {name!r} lacks the columns {missing}")
    data = _csv_bytes(table)
    path = atomic_write_bytes(table_path(name, run), data)
    atomic_write_json(_manifest(path), {"columns": list(table.columns), "rows": len(table),
                                        "sha256": hashlib.sha256(data).hexdigest()})
    return path


def load_table(name: str, run: Run | str | os.PathLike) -> pd.DataFrame:
    """The table ``name`` of ``run``, verified against its manifest; FileNotFoundError when the notebook that
    makes it has not run, :class:`ResultTableError` when it is damaged."""
    path = table_path(name, run)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the notebook that makes '{name}' first")
    try:
        manifest = json.loads(_manifest(path).read_text())
    except (OSError, ValueError) as exc:
        raise ResultTableError(f"{path}: its manifest {_manifest(path).name} is missing or unreadable ({exc})") from exc
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        raise ResultTableError(f"{path}: its content is not what was saved (truncated or edited): "
                               f"{len(data)} bytes, sha256 differs from its manifest")
    table = pd.read_csv(io.BytesIO(data))
    if list(table.columns) != manifest.get("columns") or len(table) != manifest.get("rows"):
        raise ResultTableError(f"{path}: {len(table)} rows x {list(table.columns)} where its manifest says "
                               f"{manifest.get('rows')} rows x {manifest.get('columns')}")
    return table


# ------------------------------------------------------------------ evaluation records
RECORD_PACKAGES = ("torch", "torchvision", "open_clip_torch", "numpy", "pillow")


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The commit of the git checkout this package runs from (with ``+dirty`` for uncommitted changes), or None."""
    root = Path(path) if path else Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


RECORD_FIELDS = ("dataset", "model", "pretrained", "weights_id", "task", "language", "metrics", "profile", "run",
                 "settings", "versions", "git_commit", "created")  # every record has these (and may add more)


def record_name(dataset: str, weights_id: str, model: str, task: str) -> str:
    """A record's file name, CLIP_benchmark's: ``<dataset>_<pretrained>_<model>_en_<task>.json`` (slugged)."""
    return "_".join(_slug(part) for part in (dataset, weights_id, model, "en", task)) + ".json"


def record_path(run: Run, dataset: str, task: str, folder: str | os.PathLike | None = None) -> Path:
    """Where :func:`write_record` puts ``run``'s record of ``dataset`` and ``task`` (``folder``: default
    ``<run>/records``); a run with other settings than its profile's has ``-s<key>`` after its weights, so that
    runs of several settings share a folder without overwriting each other."""
    model, _ = run.backbone
    weights = f"{run.weights_id}-s{run.settings_key}" if run.settings_key else run.weights_id
    return (Path(folder) if folder is not None else run.folder / "records") / record_name(dataset, weights, model,
                                                                                          task)


def write_record(run: Run, dataset: str, task: str, metrics: dict, *, folder: str | os.PathLike | None = None,
                 **extra) -> Path:
    """Write one evaluation's JSON record to ``<folder>/<dataset>_<weights>_<model>_en_<task>.json``
    (CLIP_benchmark's file naming; ``folder`` default ``<run>/records``) and return its path. ``extra`` adds
    fields (method, files, notes, ...)."""
    model, pretrained = run.backbone
    record = {"dataset": dataset, "model": model, "pretrained": pretrained, "weights_id": run.weights_id,
              "task": task, "language": "en", "metrics": metrics, "profile": run.profile, "run": run.name,
              "settings": run.settings, "versions": package_versions(RECORD_PACKAGES), "git_commit": git_commit(),
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
    return atomic_write_json(record_path(run, dataset, task, folder), json.loads(json.dumps(record, default=str)))


def read_record(path: str | os.PathLike) -> dict:
    """One JSON record, checked to have every field of :data:`RECORD_FIELDS`; ``ValueError`` names the file."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable JSON record ({exc})") from exc
    missing = [f for f in RECORD_FIELDS if not isinstance(record, dict) or f not in record]
    if missing:
        raise ValueError(f"{path}: not an evaluation record: it lacks the fields {missing}")
    if not isinstance(record["metrics"], dict):
        raise ValueError(f"{path}: field 'metrics' is not an object")
    return record


def read_records(folder: str | os.PathLike) -> list[dict]:
    """Every JSON record under ``folder`` (recursively), e.g. to merge several runs into one table."""
    records = []
    for path in sorted(Path(folder).rglob("*.json")):
        if path.parent.name != "records":
            continue
        try:
            records.append(json.loads(path.read_text()))
        except ValueError as exc:
            raise ValueError(f"{path}: not a JSON record ({exc})") from exc
    return records


SPLIT_METRICS = ("paper_n", "mean_rank_at_n", "mean_rank_at_n_ci_low", "mean_rank_at_n_ci_high", "n_kept",
                 "chance_mean_rank_at_n", "accuracy", "mean_rank", "mrr", "n", "chance", "skipped", "missing_images",
                 "identical_negatives", "truncated_captions", "repeated_negatives",
                 "ties_with_positive")  # a fine-grained record's metrics
FINE_GRAINED_TASK = "fine_grained_ranking"


def split_dataset(source: str, split: str) -> str:
    """A split's dataset name in the records: ``<source>_<split>`` (``fgovd_hard``, ``synthetic_color``)."""
    return f"{source}_{split}"


def record_split_table(run: Run, table: pd.DataFrame, split_files: dict[str, os.PathLike], source: str, *,
                       task: str = FINE_GRAINED_TASK, folder: str | os.PathLike | None = None) -> list[Path]:
    """One record per row of a per-split table (:func:`~fgclip_utils.evaluation.fine_grained.evaluate_splits`):
    dataset ``<source>_<split>`` (``fgovd`` or ``synthetic``), task ``fine_grained_ranking`` (or ``task``), with
    the split file's name and sha256; into ``folder`` (default ``<run>/records``)."""
    from .atomic_io import sha256_file

    paths = []
    for _, row in table.iterrows():
        split = row["split"]
        path = Path(split_files[split])
        metrics = {c: (None if pd.isna(row[c]) else row[c].item() if hasattr(row[c], "item") else row[c])
                   for c in SPLIT_METRICS if c in row}
        paths.append(write_record(run, split_dataset(source, split), task, metrics, folder=folder,
                                  method=row["method"], split=split, split_file=path.name,
                                  split_file_sha256=sha256_file(path)))
    return paths


def records_table(records: list[dict]) -> pd.DataFrame:
    """Records as one flat table, CLIP_benchmark's ``build``: one row per record with its identity (model,
    pretrained, weights, dataset, split, task, method, profile, run) and one column per metric."""
    rows = []
    for rec in records:
        row = {k: rec.get(k) for k in ("model", "pretrained", "weights_id", "dataset", "split", "task", "method",
                                       "profile", "run")}
        row.update(rec["metrics"])
        row["git_commit"], row["created"] = rec.get("git_commit"), rec.get("created")
        rows.append(row)
    return pd.DataFrame(rows)


class IncomparableRecords(ValueError):
    """Records that must not share one table: other profiles, or one split ranked at two N."""


def check_comparable(records: list[dict], paths: list[Path]) -> None:
    """Refuse, naming two files, records of more than one profile or of one dataset and task at different N."""
    first: dict = {}
    for rec, path in zip(records, paths, strict=True):
        for what, key, value in (("profile", "profile", rec["profile"]),
                                 ("N", (rec["dataset"], rec["task"]), rec["metrics"].get("paper_n"))):
            seen = first.setdefault(key, (value, path))
            if seen[0] != value:
                raise IncomparableRecords(f"{seen[1].name} and {path.name}: {what} {seen[0]!r} against {value!r}; "
                                          "their numbers are not comparable (merge them anyway with --allow-mixed)")


def build_csv(folder: str | os.PathLike, out: str | os.PathLike | None = None, allow_mixed: bool = False) -> Path:
    """Merge every JSON record directly in ``folder`` (as ``python -m fgclip_utils evaluate --output`` writes
    them) into one CSV, ``<folder>/results.csv`` by default, written atomically, with each row's profile and, for
    a profile with a disclaimer (``smoke``), that disclaimer in a ``note`` column. A file that is not a record is
    an error naming it; records of several profiles, or of one split at two N, are refused unless
    ``allow_mixed``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of records")
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"{folder}: holds no JSON records")
    records = [read_record(p) for p in paths]
    if not allow_mixed:
        check_comparable(records, paths)
    table = records_table(records)
    table["note"] = [getattr(PROFILES.get(p), "disclaimer", "") or "" for p in table["profile"]]
    return atomic_write_bytes(Path(out) if out else folder / "results.csv", _csv_bytes(table))


def record_method_rows(run: Run, table: pd.DataFrame, dataset: str, task: str) -> list[Path]:
    """One record per method row (:func:`~fgclip_utils.evaluation.method_results.method_row`), every numeric
    column a metric."""
    paths = []
    for _, row in table.iterrows():
        metrics = {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v)
                   for k, v in row.items() if isinstance(v, int | float) or hasattr(v, "item")}
        info = {k: v for k, v in row.items() if isinstance(v, str)}
        paths.append(write_record(run, dataset, f"{task}_{_slug(row['method'])}", metrics, **info))
    return paths
