import torch
from split_embedding import embed_one_split

from fgclip_utils.data.fgovd import load_split
from fgclip_utils.evaluation.fine_grained import annotation_scores
from fgclip_utils.plots.explorer import make_explorer


def test_annotation_scores_ranks_ties_against_each_caption(tiny_clip, synth_bench, tmp_path):
    paths, root = synth_bench
    emb = embed_one_split(tiny_clip, load_split(paths["color"], "color"), root, cache_dir=tmp_path, progress=False)
    table = annotation_scores(emb, 3, {"vanilla": None, "constant": lambda v, t: torch.zeros(len(v))})
    assert table["role"].tolist() == ["positive"] + ["negative"] * 5
    assert sorted(table["rank · vanilla"]) == list(range(1, 7))
    assert (table["rank · constant"] == 6).all()  # all tied: everyone ranks last
    expected = torch.nn.functional.cosine_similarity(emb.image[3], emb.text[emb.positive[3]], dim=0)
    assert abs(table.loc[0, "vanilla"] - float(expected)) < 1e-6


def test_explorer_runs_headless_and_follows_its_controls(tiny_clip, synth_bench, tmp_path):
    from fgclip_utils.data.benchmark_data import Benchmark
    paths, root = synth_bench
    splits = {n: load_split(paths[n], n) for n in ("hard", "pattern")}
    bench = Benchmark(splits=splits, image_root=root, available={n: set(s.images) for n, s in splits.items()})
    embs = {n: embed_one_split(tiny_clip, s, root, cache_dir=tmp_path, progress=False) for n, s in splits.items()}
    ui = make_explorer(bench, embs, {"vanilla": None})
    (split_box, slider), (picture, details) = ui.children[0].children, ui.children[1].children
    assert picture.value[:4] == b"\x89PNG" and "positive" in details.value
    by_id = {a.id: a for a in splits["hard"].annotations}
    slider.value = 5
    assert by_id[int(embs["hard"].annotation_ids[5])].positive in details.value
    split_box.value = "pattern"
    assert "3 negatives" in details.value  # pattern rows have 3 negatives
