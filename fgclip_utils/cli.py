"""The study's command line, ``python -m fgclip_utils`` (or ``fgclip``), in the spirit of LAION's CLIP_benchmark:
one command, many backbones, resumable, machine-readable results.

    fgclip evaluate --profile smoke --model fgclip-tiny --output records/      # vanilla ranking, per split
    fgclip evaluate --profile full --model-set openai --output records/ --skip-existing
    fgclip evaluate --profile full --model ViT-B-16 ViT-L-14 --pretrained openai --splits hard color
    fgclip train --profile full --model ViT-B-16 --pretrained openai --kind paper-linear --output records/
    fgclip detect --profile full --detector owlvit-b16 owlv2-l14 --output records/   # the detectors, same metric
    fgclip build records/                  # merge the JSON records into records/results.csv
    fgclip figures --profile full          # redraw every paper figure from the cached result tables
    fgclip models [--set laion] [--sizes]  # the named sets of backbones

``evaluate`` writes one JSON record per (model, pretrained, split) into ``--output``, named as CLIP_benchmark
names them (``<dataset>_<pretrained>_<model>_en_<task>.json``; dataset ``fgovd_<split>`` or, in ``smoke``,
``synthetic_<split>``), then the merged ``results.csv``. ``train`` writes the head's records alike (task
``fine_grained_ranking_<kind>``). With ``--skip-existing``, a record already there that was made with the same
profile settings is kept and its evaluation not run again (a backbone with every record is not even loaded).

Exit codes: 0 every evaluation asked for is done (or kept); 1 some failed (the others' records are written, the
failures listed), or some annotations were ranked without their image (counted beside every number; exit 0 with
``--allow-missing``); 2 the arguments are wrong (unknown model, tag, set or split, with close matches; an unreadable
models file), nothing run; 130 interrupted.
"""
from __future__ import annotations

import argparse
import difflib
import errno
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.EDQUOT}


class UsageError(Exception):
    """Arguments that cannot run: exit code 2, before any work."""


def _profile(args):
    from .extraction.clip_forward import PRECISIONS
    from .profiles import get_profile

    try:
        P = get_profile(args.profile)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if getattr(args, "device", None) is not None:
        import torch

        try:
            device = torch.device(args.device)
        except (RuntimeError, ValueError) as exc:
            raise UsageError(f"--device {args.device!r} is not a device ({exc}); e.g. cpu, cuda, cuda:1") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {args.device!r}: this machine has no CUDA device (use --device cpu)")
    extract = P.extract
    if getattr(args, "batch_size", None) is not None:
        if args.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
        extract = replace(extract, batch_size=args.batch_size)
    if getattr(args, "precision", None) is not None:
        if args.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {PRECISIONS}, got {args.precision!r}")
        extract = replace(extract, precision=args.precision)
    if getattr(args, "scale_factor", None) is not None:
        if not args.scale_factor > 0:
            raise UsageError(f"--scale-factor must be positive, got {args.scale_factor}")
        extract = replace(extract, scale_factor=args.scale_factor)
    return replace(P, extract=extract)


def _splits(names):
    from .data.fgovd import SPLITS

    if not names:
        return None
    unknown = [n for n in names if n not in SPLITS]
    if unknown:
        close = {n: difflib.get_close_matches(n, list(SPLITS), n=3) for n in unknown}
        raise UsageError(f"unknown split(s) {unknown}; expected some of {list(SPLITS)} (close matches: {close})")
    return list(dict.fromkeys(names))


def _backbones(args):
    from .extraction.model_sets import check_backbones, resolve_backbones

    try:
        pairs = resolve_backbones(args.model, args.pretrained, args.models_file, args.model_set)
        check_backbones(pairs)
    except (ValueError, KeyError) as exc:
        raise UsageError(exc.args[0] if exc.args else str(exc)) from exc
    return pairs


def _source(P) -> str:
    return "synthetic" if P.synthetic else "fgovd"


def _run_of(P, model: str, pretrained: str | None):
    """The :class:`~fgclip_utils.results.Run` a backbone's records belong to, without loading the backbone."""
    from .extraction.clip_models import weights_id_for
    from .results import Run, run_settings

    return Run(P.name, ((model, pretrained),), weights_id_for(model, pretrained), run_settings(P))


def _kept(P, pairs, splits, out: Path, task: str) -> tuple[list, list]:
    """Split ``pairs`` into those with work left and those whose every record is already in ``out``, made with
    the same settings (``--skip-existing``)."""
    from .atomic_io import sha256_file
    from .data.benchmark_data import download_split, load_benchmark
    from .data.fgovd import SPLITS
    from .results import read_record, record_path, split_dataset

    names = splits or list(SPLITS)
    files = {n: s.path for n, s in load_benchmark(P, "test", names).splits.items()} if P.synthetic else \
        {n: download_split(n) for n in names}  # the split files only, not their images
    hashes = {n: sha256_file(p) for n, p in files.items()}
    todo, done = [], []
    for model, pretrained in pairs:
        run = _run_of(P, model, pretrained)
        why = None
        for split in names:
            path = record_path(run, split_dataset(_source(P), split), task, out)
            try:
                why = _stale(read_record(path), run, split, task, hashes[split])
            except ValueError:
                why = "absent or unreadable"
            if why:
                if path.exists():
                    print(f"  {path.name}: {why}, evaluating again", file=sys.stderr)
                break
        (todo if why else done).append((model, pretrained))
    return todo, done


def _stale(record: dict, run, split: str, task: str, split_sha256: str) -> str | None:
    """Why a record must be made again (other identity, settings, split file, missing images, a number that is
    not a finite number), or None when it can be kept."""
    model, _ = run.backbone
    identity = {"model": model, "weights_id": run.weights_id, "split": split, "task": task, "profile": run.profile,
                "split_file_sha256": split_sha256}
    for field, want in identity.items():
        if record.get(field) != want:
            return f"its {field} is {record.get(field)!r}, not {want!r}"
    if record["settings"] != run.settings:
        return "made with other settings"
    metrics = record["metrics"]
    if not metrics or not isinstance(metrics.get("mean_rank_at_n"), int | float):
        return "it holds no mean rank"
    bad = [k for k, v in metrics.items() if v is not None and not (isinstance(v, int | float) and math.isfinite(v))]
    if bad:
        return f"its {bad[0]} is {metrics[bad[0]]!r}, not a finite number"
    if (metrics.get("missing_images") or 0) > 0:
        return f"made without {metrics['missing_images']} of its images"
    return None


def _write_records(P, result, rows, out: Path, task: str) -> list[Path]:
    from .results import record_split_table, run_for

    run = run_for(P, result.bundle)
    files = {name: split.path for name, split in result.bench.splits.items()}
    return record_split_table(run, rows, files, _source(P), task=task, folder=out)


def _missing_note(rows) -> str:
    """`` (N of M annotations without their image, x%)`` for per-split rows that lost some, else ``""``."""
    from .evaluation.fine_grained import missing_images

    missing, total = missing_images(rows)
    return f" ({missing} of {total} annotations without their image, {missing / total:.1%})" if missing else ""


def _report_failures(failures, missing: int = 0, allow_missing: bool = False) -> int:
    for f in failures:
        print(f"FAILED {f.backbone}: {f.error}", file=sys.stderr)
    if missing and not allow_missing:
        print(f"INCOMPLETE: {missing} annotation(s) were ranked without their image (see each line above and the "
              "records' missing_images); rerun once the images can be had, or pass --allow-missing", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED if failures else EXIT_OK


def _build(out: Path) -> None:
    from .results import build_csv

    if any(out.glob("*.json")):
        try:
            print(f"merged records -> {build_csv(out)}")
        except ValueError as exc:  # the records stay; the merge is refused, and said so
            print(f"NOT MERGED: {exc}", file=sys.stderr)


def _output_folder(path: str) -> Path:
    """``--output``, made if absent; a file, or a folder this process cannot write to, is refused before any work."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--output {out} is not writable")
    return out


def _prepare(args, task: str | None = None):
    """What ``evaluate`` and ``train`` share: the profile, splits and backbones (usage errors first), the output
    folder, and the backbones left to do after ``--skip-existing``."""
    from .profiles import backbone_label
    from .results import FINE_GRAINED_TASK

    P = _profile(args)
    splits = _splits(args.splits)
    pairs = _backbones(args)
    out = _output_folder(args.output)
    task = task or FINE_GRAINED_TASK
    todo, kept = _kept(P, pairs, splits, out, task) if args.skip_existing else (pairs, [])
    for model, tag in kept:
        print(f"kept {backbone_label(model, tag)}: every {task} record already in {out}")
    return P, splits, out, todo, kept


def cmd_evaluate(args) -> int:
    from .results import FINE_GRAINED_TASK
    from .sweep.backbone_sweep import sweep_vanilla

    P, splits, out, todo, kept = _prepare(args)
    written: list[Path] = []
    missing = [0]

    def on_backbone(result):
        paths = _write_records(P, result, result.vanilla, out, FINE_GRAINED_TASK)
        written.extend(paths)
        missing[0] += int(result.vanilla["missing_images"].sum())
        fg = result.vanilla.set_index("split")["mean_rank_at_n"]
        print(f"{result.bundle.label}: mean rank at N per split "
              + ", ".join(f"{s} {v:.3f}" for s, v in fg.items()) + _missing_note(result.vanilla)
              + f" -> {len(paths)} records")

    failures = []
    if todo:
        tables = sweep_vanilla(P, todo, splits=splits, device=args.device, max_loaded=args.max_loaded,
                               progress=not args.no_progress, on_backbone=on_backbone)
        failures = tables.failures
    if P.disclaimer:
        print("NOTE:", P.disclaimer)
    print(f"{len(written)} records written, {len(kept)} backbone(s) kept, {len(failures)} failed; profile {P.name}, "
          f"metric: the paper's Mean Rank at N (1 is best) beside the study's accuracy")
    _build(out)
    return _report_failures(failures, missing[0], args.allow_missing)


DETECTOR_TASK = "detector_ranking"
DETECTOR_METRICS = ("paper_n", "mean_rank_at_n", "mean_rank_at_n_ci_low", "mean_rank_at_n_ci_high", "n_kept",
                    "chance_mean_rank_at_n", "accuracy", "mrr", "n", "no_overlap", "long_vocabulary",
                    "too_few_negatives", "missing_images")


def cmd_detect(args) -> int:
    """The detectors through the FG-OVD authors' rank protocol: one record per (detector, split), task
    ``detector_ranking``, on the same Mean Rank at N as ``evaluate``."""
    from .atomic_io import sha256_file
    from .data.benchmark_data import load_benchmark
    from .evaluation.detector_ranking import evaluate_detectors
    from .extraction.detectors import DETECTOR_SPECS, spec_of
    from .results import Run, run_settings, split_dataset, write_record

    P = _profile(args)
    splits = _splits(args.splits)
    names = args.detector or list(P.detectors)
    try:
        specs = [spec_of(n) for n in names]
    except KeyError as exc:
        close = {n: difflib.get_close_matches(n, list(DETECTOR_SPECS), n=3) for n in names if n not in DETECTOR_SPECS}
        raise UsageError(f"{exc.args[0]} (close matches: {close})") from exc
    out = _output_folder(args.output)
    bench = load_benchmark(P, "test", splits)
    source = "synthetic" if P.synthetic else "fgovd"
    written, failures = [], []
    for spec in specs:
        try:
            table = evaluate_detectors([spec.name], bench, P.paper_n, device=args.device,
                                       progress=not args.no_progress)
        except (ImportError, OSError, RuntimeError, ValueError) as exc:
            failures.append(SimpleNamespace(backbone=f"{spec.name} ({spec.hub_id})",
                                            error=f"{type(exc).__name__}: {exc}"))
            continue
        run = Run(P.name, ((spec.name, spec.hub_id),), spec.hub_id, run_settings(P))
        for _, row in table.iterrows():
            metrics = {c: (None if row[c] != row[c] else row[c].item() if hasattr(row[c], "item") else row[c])
                       for c in DETECTOR_METRICS}
            split = bench.splits[row["split"]]
            written.append(write_record(run, split_dataset(source, row["split"]), DETECTOR_TASK, metrics, folder=out,
                                        method=row["method"], split=row["split"], split_file=split.path.name,
                                        split_file_sha256=sha256_file(split.path), detector=spec.name,
                                        protocol="FG-OVD evaluation/ranks.py: NMS 0.5, matched prediction's "
                                                 "vocabulary scores, ties against, no overlap = worst"))
        ranks = table.set_index("split")["mean_rank_at_n"]
        print(f"{spec.title}: mean rank at N per split " + ", ".join(f"{k} {v:.3f}" for k, v in ranks.items()))
    if P.disclaimer:
        print("NOTE:", P.disclaimer, "(and random-init tiny detectors)")
    print(f"{len(written)} records written, {len(failures)} detector(s) failed; profile {P.name}, metric: the "
          f"paper's Mean Rank at N (1 is best)")
    _build(out)
    return _report_failures(failures)


def cmd_train(args) -> int:
    from .heads.architectures import HEAD_KINDS
    from .results import FINE_GRAINED_TASK
    from .sweep.backbone_sweep import sweep_heads

    kind = args.kind
    if kind not in HEAD_KINDS:
        raise UsageError(f"unknown head kind {kind!r}; expected one of {sorted(HEAD_KINDS)}")
    task = f"{FINE_GRAINED_TASK}_{kind}"
    P, splits, out, todo, kept = _prepare(args, task)
    if splits and len(splits) < 8:
        print("note: the FG-OVD Mean Rank (the gain) needs all eight splits; per-split numbers only", file=sys.stderr)
    written: list[Path] = []
    missing = [0]

    def on_backbone(result):
        written.extend(_write_records(P, result, result.vanilla, out, FINE_GRAINED_TASK))
        written.extend(_write_records(P, result, result.head, out, task))
        missing[0] += int(result.vanilla["missing_images"].sum())
        if note := _missing_note(result.vanilla):
            print(f"{result.bundle.label}:{note}")

    failures, heads = [], None
    if todo:
        tables = sweep_heads(P, todo, kind, splits=splits, device=args.device, max_loaded=args.max_loaded,
                             progress=not args.no_progress, on_backbone=on_backbone)
        failures, heads = tables.failures, tables.heads
    if heads is not None and len(heads):
        print(heads[["backbone", "kind", "vanilla_fg", "head_fg", "gain", "gap_closed"]].to_string(index=False))
        print("FG-OVD Mean Rank (mean of the eight splits' Mean Rank at N; 1 is best); gain = vanilla - head")
    if P.disclaimer:
        print("NOTE:", P.disclaimer)
    print(f"{len(written)} records written, {len(kept)} backbone(s) kept, {len(failures)} failed")
    _build(out)
    return _report_failures(failures, missing[0], args.allow_missing)


def cmd_build(args) -> int:
    from .results import build_csv

    try:
        print(build_csv(args.folder, args.output, allow_mixed=args.allow_mixed))
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    return EXIT_OK


def cmd_figures(args) -> int:
    """Redraw every figure of the profile; print what was saved and skipped; a failure if nothing was drawn."""
    from .plots.figures import redraw_all

    saved, skipped = redraw_all(_profile(args).name, args.out)
    for path in saved:
        print("saved", path)
    for reason in skipped:
        print("skipped", reason)
    return EXIT_OK if saved else EXIT_FAILED


def cmd_models(args) -> int:
    from .extraction.model_sets import MODEL_SETS, model_set, panel_table

    if args.set is None:
        for s in MODEL_SETS.values():
            print(f"{s.name:10s} {len(s.backbones):2d}  {s.description}")
        return EXIT_OK
    try:
        chosen = model_set(args.set)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from exc
    print(panel_table(chosen.name, sizes=args.sizes).to_string(index=False))
    return EXIT_OK


def _backbone_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("backbones (any mix; repeats dropped)")
    g.add_argument("--model", nargs="+", default=[], metavar="NAME", help="open_clip model names")
    g.add_argument("--pretrained", nargs="+", default=[], metavar="TAG",
                   help="pretrained tags or weights files: one for all models or one per model (default: random init)")
    g.add_argument("--models-file", default=None, metavar="FILE", help="lines 'model,pretrained'")
    g.add_argument("--model-set", default=None, metavar="SET", help="a named set (see 'models')")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None, help="smoke or full (default: $FGCLIP_PROFILE, else smoke)")
    p.add_argument("--splits", nargs="+", default=None, metavar="SPLIT", help="test splits (default: all eight)")
    p.add_argument("--batch-size", type=int, default=None, help="extraction batch size (default: the profile's)")
    p.add_argument("--precision", default=None, help="auto, fp32, bf16, fp16 or half (default: the profile's)")
    p.add_argument("--scale-factor", type=float, default=None,
                   help="crop enlargement around the box centre (default: the profile's, 1.0 as the paper)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--output", default="fgclip_records", metavar="DIR", help="folder of the JSON records and CSV")
    p.add_argument("--skip-existing", action="store_true", help="keep records already in DIR (same settings)")
    p.add_argument("--allow-missing", action="store_true",
                   help="exit 0 even when some annotations' images could not be had (they are counted, not ranked)")
    p.add_argument("--max-loaded", type=int, default=4, help="backbones held in memory at once (default: 4)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fgclip", description=__doc__.split("\n\n")[0],
                                 epilog="exit codes: 0 done, 1 some evaluations failed, 2 bad arguments, "
                                        "130 interrupted")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("evaluate", help="vanilla fine-grained ranking per split, for one or many backbones")
    _backbone_arguments(p)
    _common(p)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("detect", help="the detectors built on CLIP (OWL-ViT, OWLv2, NoctOWL) on the same metric")
    p.add_argument("--detector", nargs="+", default=None, metavar="NAME",
                   help="detector names (default: the profile's; see fgclip_utils.DETECTORS)")
    p.add_argument("--profile", default=None, help="smoke or full (default: $FGCLIP_PROFILE, else smoke)")
    p.add_argument("--splits", nargs="+", default=None, metavar="SPLIT", help="test splits (default: all eight)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--output", default="fgclip_records", metavar="DIR", help="folder of the JSON records and CSV")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_detect)
    p = sub.add_parser("train", help="train a head per backbone (paper's or study's recipe) and evaluate it")
    _backbone_arguments(p)
    _common(p)
    p.add_argument("--kind", default="paper-linear",
                   help="head kind: paper-* trains with the paper's two-stage recipe, others with the study's "
                        "(default: paper-linear)")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("build", help="merge the JSON records of a folder into one CSV")
    p.add_argument("folder")
    p.add_argument("--output", default=None, help="CSV path (default: FOLDER/results.csv)")
    p.add_argument("--allow-mixed", action="store_true", help="merge records of several profiles or N")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("figures", help="redraw every paper figure of a profile from its cached result tables")
    p.add_argument("--profile", default=None)
    p.add_argument("--out", default=None, help="output folder (default: figures/ or $FGCLIP_FIGURES)")
    p.set_defaults(func=cmd_figures)
    p = sub.add_parser("models", help="list the named sets of backbones, or one set's backbones")
    p.add_argument("--set", default=None)
    p.add_argument("--sizes", action="store_true", help="with parameters and download sizes (slower)")
    p.set_defaults(func=cmd_models)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)  # argparse itself exits with 2 on malformed arguments
    if getattr(args, "max_loaded", 1) < 1:
        print("fgclip: error: --max-loaded must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"fgclip {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: records written so far are kept; run again with --skip-existing to go on",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # a full disk, a read-only or missing folder: one line that names the path
        from .cache import CacheRootError

        if exc.errno not in ENVIRONMENT_ERRNOS and not isinstance(exc, CacheRootError):
            raise
        print(f"fgclip {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
