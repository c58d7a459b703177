"""Figures are redrawn from cached result tables alone (made here by the real pipeline at small scale), per run:
two backbones' figures stand side by side, and a damaged table is skipped with its reason, never drawn."""
import pandas as pd

from fgclip_utils import results
from fgclip_utils.cli import main as fgclip_main
from fgclip_utils.data.benchmark_data import load_benchmark
from fgclip_utils.data.coco_captions import synthetic_caption_set
from fgclip_utils.evaluation.attributes import attribute_confusion, attribute_labels
from fgclip_utils.evaluation.detector_ranking import clip_vs_detectors
from fgclip_utils.evaluation.fine_grained import evaluate_split, evaluate_splits, failures
from fgclip_utils.evaluation.method_results import method_row
from fgclip_utils.evaluation.separability import embedding_spaces, separability_table
from fgclip_utils.evaluation.umap_projection import umap_table
from fgclip_utils.extraction.clip_models import load_clip
from fgclip_utils.extraction.embedding_cache import embed_captions, embed_splits
from fgclip_utils.heads.architectures import build_head
from fgclip_utils.heads.paper_recipe import RowData, train_stage
from fgclip_utils.heads.training import TrainConfig, train_head
from fgclip_utils.plots.figures import FIGURES, redraw_all
from fgclip_utils.profiles import StageConfig, get_profile


def _fill_run(P, bundle, tmp_path):
    """Every result table of one run, as notebooks 01-03 make them (few epochs, small data)."""
    run = results.run_for(P, bundle)
    bench = load_benchmark(P, "test")
    embs = embed_splits(bundle, bench, extract=P.extract, progress=False)
    vanilla = evaluate_splits(embs, method=bundle.label, n_negatives=P.paper_n)
    results.save_table(vanilla, "nb01_vanilla_clip", run)
    detector_table = vanilla.assign(method="a detector")  # the figure reads the table, not how it was made
    results.save_table(clip_vs_detectors([vanilla], detector_table), "nb01_clip_vs_detectors", run)
    hard = embs["hard"]
    worst = failures(bench.splits["hard"], hard, evaluate_split(hard), 4).assign(method="m", scale_factor=1.0)
    results.save_table(worst, "nb01_failures_hard", run)

    coarse = embed_captions(bundle, synthetic_caption_set(bench), bench.image_root, progress=False)
    rows_data = RowData.from_split(hard)
    stage = StageConfig("fg-ovd", lr=1e-3, margin=0.05, epochs=2, batch_size=64)
    paper = train_stage(build_head("paper-linear", bundle.embed_dim, seed=0), rows_data, rows_data, stage,
                        tmp_path / f"{run.name}-paper.pt", "k", device="cpu", progress=False)
    common = dict(n_negatives=P.paper_n, origin="this run")
    rows = [method_row("vanilla", embs, coarse, kind="cosine", stage="vanilla", **common),
            method_row("paper-linear / fg-ovd", embs, coarse, paper.head, kind="paper-linear", stage="fg-ovd",
                       **common)]
    results.save_table(pd.DataFrame(rows), "nb02_paper_heads", run)
    results.save_table(paper.history, results.history_table("paper-linear", "fg-ovd"), run)

    study = train_head(build_head("linear", bundle.embed_dim), hard, hard, TrainConfig(epochs=1, batch_size=64),
                       tmp_path / f"{run.name}-study.pt", device="cpu", progress=False)
    study_rows = [dict(rows[0], loss="—"),
                  method_row("linear / triplet", embs, coarse, study.head, kind="linear", loss="triplet",
                             authors_eval=False, **common)]
    results.save_table(pd.DataFrame(study_rows), "nb02_study_heads", run)

    labels = attribute_labels(bench.splits["hard"])
    spaces = embedding_spaces(hard, list(range(len(hard))), paper.head)
    results.save_table(separability_table(spaces, labels, ["color", "pattern"]), "nb03_separability", run)
    results.save_table(umap_table(spaces, labels, n_neighbors=10), "nb03_umap", run)
    confusion = attribute_confusion(embs, {"vanilla": None, "paper-linear": paper.head.score})
    results.save_table(confusion, "nb03_confusion", run)
    return run


def test_redraw_every_figure_of_every_run_from_cached_tables(cache_dir, tmp_path, tiny_clip):
    out = tmp_path / "figs"
    saved, skipped = redraw_all("smoke", out)
    assert saved == [] and skipped == ["no results of profile 'smoke' yet: run notebooks 01-04 first"]
    assert fgclip_main(["figures", "--profile", "smoke", "--out", str(out)]) == 1  # nothing to draw is a failure

    P = get_profile("smoke")
    run = _fill_run(P, tiny_clip, tmp_path)
    other = load_clip("fgclip-tiny", device="cpu", seed=1)  # a second backbone: other weights, other run
    second = results.run_for(P, other)
    other_embs = embed_splits(other, load_benchmark(P, "test"), extract=P.extract, progress=False)
    results.save_table(evaluate_splits(other_embs, method=other.label, n_negatives=P.paper_n), "nb01_vanilla_clip",
                       second)
    assert run.name == "fgclip-tiny-random0" and second.name == "fgclip-tiny-random1"

    saved, skipped = redraw_all("smoke", out)
    names = sorted(p.name for p in saved)
    per_run = [stem for stem, spec in FIGURES.items() if spec.scope == "run"]  # notebook 04's are per sweep
    expected = sorted(f"{stem}_smoke_{run.name}.{ext}" for stem in per_run for ext in ("pdf", "png"))
    assert [n for n in names if run.name in n] == expected and all(p.stat().st_size > 5000 for p in saved)
    # the second run has only notebook 01's table: its fig01 stands beside the first's, the rest are skipped
    assert [n for n in names if second.name in n] == [f"fig01_split_mean_rank_smoke_{second.name}.pdf",
                                                       f"fig01_split_mean_rank_smoke_{second.name}.png"]
    assert len(skipped) == len(per_run) - 1 and all(s.startswith(second.name) for s in skipped)
    assert fgclip_main(["figures", "--profile", "smoke", "--out", str(out)]) == 0

    # a truncated table is refused with its file named, and its figures are skipped, not drawn from part of it
    path = results.table_path("nb02_paper_heads", run)
    path.write_bytes(path.read_bytes()[:-40])
    saved, skipped = redraw_all("smoke", out)
    damaged = [s for s in skipped if s.startswith(run.name)]
    figures = {"fig03_fg_vs_coco", "fig04_heads_per_split", "fig05_paper_training"}
    assert {s.split()[1].rstrip(":") for s in damaged} == figures
    assert all("nb02_paper_heads.csv" in s and "truncated or edited" in s for s in damaged)

    # a torn run record skips that run, with the reason, and the other runs are still drawn
    (second.folder / "run.json").write_text('{"profile": "smo')
    saved, skipped = redraw_all("smoke", out)
    assert any(s.startswith(f"{second.name}: skipped") and "not a readable run record" in s for s in skipped)
    assert saved and not [p for p in saved if second.name in p.name]


def test_every_figure_of_a_run_with_missing_images_says_how_many(cache_dir, tiny_clip):
    from fgclip_utils.plots.figures import FigureContext

    P = get_profile("smoke")
    run = results.run_for(P, tiny_clip)
    embs = embed_splits(tiny_clip, load_benchmark(P, "test"), extract=P.extract, progress=False)
    table = evaluate_splits(embs, method=tiny_clip.label, n_negatives=P.paper_n)
    results.save_table(table, "nb01_vanilla_clip", run)
    assert FigureContext(run).disclaimer == P.disclaimer  # nothing missing: the profile's disclaimer alone
    table.loc[0, "missing_images"] = 12
    results.save_table(table, "nb01_vanilla_clip", run)
    total = 12 + int(table["n"].sum()) + int(table["skipped"].sum())
    assert FigureContext(run).disclaimer == f"{P.disclaimer}; 12 of {total} test annotations " \
                                           f"({12 / total:.1%}) without their image"
