"""Figures are redrawn from cached result tables alone (here made by the real pipeline at small scale)."""

from fgclip_utils import results
from fgclip_utils.data.benchmark_data import load_benchmark
from fgclip_utils.data.coco_captions import synthetic_caption_set
from fgclip_utils.evaluation.attributes import attribute_labels
from fgclip_utils.evaluation.fine_grained import evaluate_split, evaluate_splits
from fgclip_utils.evaluation.method_results import method_row
from fgclip_utils.evaluation.separability import separability_table
from fgclip_utils.extraction.embedding_cache import embed_benchmark, embed_caption_set
from fgclip_utils.heads.architectures import build_head
from fgclip_utils.heads.training import TrainConfig, train_head
from fgclip_utils.plots import redraw as make_figures
from fgclip_utils.plots.fine_grained_plots import failures
from fgclip_utils.plots.umap_plots import umap_table
from fgclip_utils.profiles import get_profile


def test_redraw_all_figures_from_cached_tables(cache_dir, tmp_path, tiny_clip):
    out = tmp_path / "figs"
    saved, skipped = make_figures.redraw("smoke", out)
    assert saved == [] and len(skipped) == 7 and "(notebook 01)" in skipped[0] and "(notebook 03)" in skipped[-1]

    P = get_profile("smoke")
    bench = load_benchmark(P, "test")
    embs = embed_benchmark(tiny_clip, bench, progress=False)
    results.save_table(evaluate_splits(embs, method="m"), "nb01_vanilla_clip", "smoke")
    hard = embs["hard"]
    worst = failures(bench.splits["hard"], hard, evaluate_split(hard), 4).assign(method="m", scale_factor=1.0)
    results.save_table(worst, "nb01_failures_hard", "smoke")

    coarse = embed_caption_set(tiny_clip, synthetic_caption_set(bench), bench.image_root, progress=False)
    res = train_head(build_head("linear", 64), hard, hard, TrainConfig(epochs=1, batch_size=64), tmp_path / "h.pt",
                     device="cpu", progress=False)
    rows = [method_row("vanilla", embs, coarse, kind="cosine", loss="—"),
            method_row("linear / triplet", embs, coarse, res.head, kind="linear", loss="triplet")]
    import pandas as pd
    results.save_table(pd.DataFrame(rows), "nb02_heads", "smoke")
    results.save_table(res.history, "nb02_history_linear_triplet", "smoke")

    labels = attribute_labels(bench.splits["hard"])
    spaces = {("before", "image"): hard.image.numpy(),
              ("after", "image"): res.head.embed_image(hard.image).detach().numpy()}
    results.save_table(separability_table(spaces, labels, ["color", "pattern"]), "nb03_separability", "smoke")
    results.save_table(umap_table(spaces, labels, n_neighbors=10), "nb03_umap", "smoke")

    saved, skipped = make_figures.redraw("smoke", out)
    assert skipped == []
    names = sorted(p.name for p in saved)
    assert len(names) == 14 and all(p.stat().st_size > 5000 for p in saved)
    assert names[:2] == ["fig01_split_accuracy_smoke.pdf", "fig01_split_accuracy_smoke.png"]
    assert make_figures.main(["--profile", "smoke", "--out", str(out)]) == 0
