"""Figures are redrawn from cached result tables alone (here made by the real pipeline at small scale)."""

from fgclip_utils import make_figures, results
from fgclip_utils.attributes import attribute_labels
from fgclip_utils.benchmark import load_benchmark
from fgclip_utils.eval_plots import failures
from fgclip_utils.evaluation import evaluate_split, evaluate_splits
from fgclip_utils.heads import build_head
from fgclip_utils.profiles import get_profile
from fgclip_utils.retrieval import embed_caption_set, synthetic_caption_set
from fgclip_utils.separability import separability_table
from fgclip_utils.study import embed_benchmark, method_row
from fgclip_utils.training import TrainConfig, train_head
from fgclip_utils.umap_plots import umap_table


def test_redraw_all_figures_from_cached_tables(cache_dir, tmp_path, tiny_clip):
    out = tmp_path / "figs"
    saved, skipped = make_figures.redraw("smoke", out)
    assert saved == [] and len(skipped) == 3 and "notebook 01" in skipped[0]

    P = get_profile("smoke")
    bench = load_benchmark(P, "test")
    embs = embed_benchmark(tiny_clip, bench, progress=False)
    results.save_table(evaluate_splits(embs, method="m"), "nb01_vanilla_clip", "smoke")
    hard = embs["hard"]
    results.save_table(failures(bench.splits["hard"], hard, evaluate_split(hard), 4).assign(method="m"),
                       "nb01_failures_hard", "smoke")

    coarse = embed_caption_set(tiny_clip, synthetic_caption_set(bench), bench.image_root, progress=False)
    res = train_head(build_head("linear", 64), hard, hard, TrainConfig(epochs=1, batch_size=64), tmp_path / "h.pt",
                     device="cpu", progress=False)
    rows = [method_row("vanilla", embs, coarse, kind="cosine", loss="—"),
            method_row("linear / triplet", embs, coarse, res.head, kind="linear", loss="triplet")]
    import pandas as pd
    results.save_table(pd.DataFrame(rows), "nb02_heads", "smoke")
    results.save_table(res.history, "nb02_history_linear_triplet", "smoke")

    labels = attribute_labels(bench.splits["hard"])
    spaces = {("before", "image"): hard.image.numpy(), ("after", "image"): res.head.embed_image(hard.image).detach().numpy()}
    results.save_table(separability_table(spaces, labels, ["color", "pattern"]), "nb03_separability", "smoke")
    results.save_table(umap_table(spaces, labels, n_neighbors=10), "nb03_umap", "smoke")

    saved, skipped = make_figures.redraw("smoke", out)
    assert skipped == []
    names = sorted(p.name for p in saved)
    assert len(names) == 14 and all(p.stat().st_size > 5000 for p in saved)
    assert names[:2] == ["fig01_split_accuracy_smoke.pdf", "fig01_split_accuracy_smoke.png"]
    assert make_figures.main(["--profile", "smoke", "--out", str(out)]) == 0
