"""The backbone sweep: windows of loaded backbones, shared decodes, numbers equal to one backbone at a time, the
heads table's arithmetic, the sweep's folder and its registered figures."""
from __future__ import annotations

import pandas as pd
import pytest

import fgclip_utils as fg
from fgclip_utils.results import Run
from fgclip_utils.sweep.backbone_sweep import load_windows


@pytest.fixture
def smoke():
    return fg.get_profile("smoke")


def test_windows_hold_at_most_max_loaded_and_report_failures(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"junk")
    pairs = [("fgclip-tiny-w192", None), ("fgclip-tiny", None), ("fgclip-tiny-w128", str(broken)),
             ("fgclip-tiny-w128", None)]
    failures = []
    windows = list(load_windows(pairs, device="cpu", max_loaded=2, failures=failures))
    # 64-px configs first (the broken one among them is reported, not loaded), then the 96-px one
    assert [[b.name for b in w.bundles] for w in windows] == [["fgclip-tiny"], ["fgclip-tiny-w128", "fgclip-tiny-w192"]]
    assert [f.backbone for f in failures] == [f"fgclip-tiny-w128 ({broken})"] and failures[0].detail
    windows = list(load_windows(pairs[::-1][:1] + pairs[:2], device="cpu", max_loaded=2, failures=[]))
    assert [[b.name for b in w.bundles] for w in windows] == [["fgclip-tiny-w128", "fgclip-tiny"], ["fgclip-tiny-w192"]]
    assert windows[0].groups == [[0, 1]]  # the two 64-px configs share a decode
    with pytest.raises(ValueError, match="max_loaded"):
        next(load_windows(pairs, max_loaded=0))
    with pytest.raises(Exception):  # noqa: B017 - whatever torch raises for a junk file, it is not swallowed
        list(load_windows(pairs[2:3], device="cpu"))  # without a failures list, the error propagates


def test_sweep_vanilla_numbers_equal_one_backbone_at_a_time(cache_dir, smoke):
    pairs = fg.model_set("tiny").pairs()
    tables = fg.sweep_vanilla(smoke, pairs, splits=["hard", "color"], device="cpu", max_loaded=3, progress=False)
    assert not tables.failures and len(tables.vanilla) == 6
    assert tables.backbones["vanilla_fg_ci_low"].isna().all()  # two splits: no FG-OVD Mean Rank, no interval
    info = tables.backbones.set_index("model")
    assert list(info["decode_group"]) == [0, 0, 1] and list(info["embed_dim"]) == [64, 128, 192]
    assert (info["image_params_m"].diff().dropna() > 0).all()  # widths 64 < 128 < 192
    bench = fg.load_benchmark(smoke, "test", ["hard", "color"])
    for model, pretrained in pairs:
        bundle = fg.load_clip(model, pretrained, device="cpu")
        emb = fg.embed_splits(bundle, bench, extract=smoke.extract, progress=False)  # the sweep filled this cache
        assert all(e.meta["from_cache"] for e in emb.values())
        alone = fg.evaluate_splits(emb, n_negatives=smoke.paper_n).set_index("split")["mean_rank_at_n"]
        swept = tables.vanilla[tables.vanilla["model"] == model].set_index("split")["mean_rank_at_n"]
        pd.testing.assert_series_equal(swept, alone)


def test_a_backbone_that_fails_after_loading_is_reported_and_the_others_run(cache_dir, smoke, monkeypatch):
    import torch

    from fgclip_utils.extraction.clip_forward import DegenerateEmbeddings
    from fgclip_utils.sweep import backbone_sweep

    real = backbone_sweep.load_clip

    def load_with_a_broken_text_tower(model, pretrained=None, **kwargs):
        bundle = real(model, pretrained, **kwargs)
        if model == "fgclip-tiny-w128":
            with torch.no_grad():
                bundle.model.text_projection.fill_(float("nan"))
        return bundle

    monkeypatch.setattr(backbone_sweep, "load_clip", load_with_a_broken_text_tower)
    seen = []
    tables = fg.sweep_vanilla(smoke, fg.model_set("tiny").pairs(), splits=["hard"], device="cpu", max_loaded=3,
                              progress=False, on_backbone=lambda r: seen.append(r.bundle.name))
    assert [f.backbone for f in tables.failures] == ["fgclip-tiny-w128 (random-init)"]
    assert "DegenerateEmbeddings" in tables.failures[0].error and "text tower" in tables.failures[0].error
    assert sorted(seen) == ["fgclip-tiny", "fgclip-tiny-w192"] == sorted(set(tables.vanilla["model"]))
    with pytest.raises(DegenerateEmbeddings, match="text tower"):  # without keep_going, the error propagates
        fg.sweep_vanilla(smoke, [("fgclip-tiny-w128", None)], splits=["hard"], device="cpu", progress=False,
                         keep_going=False)


def test_head_gain_row_arithmetic():
    splits = list(fg.SPLITS)
    vanilla = pd.DataFrame({"split": splits, "mean_rank_at_n": [3.0] * 8})
    head = pd.DataFrame({"split": splits, "mean_rank_at_n": [1.5] * 4 + [2.5] * 4})
    row = fg.head_gain_row("b", "paper-linear", vanilla, head)
    assert row["vanilla_fg"] == 3.0 and row["head_fg"] == 2.0 and row["gain"] == 1.0
    assert row["gap_closed"] == pytest.approx(0.5) and row["vanilla_mean_rank_sum"] == 24.0
    assert row["head_mr_hard"] == 1.5 and row["vanilla_mr_pattern"] == 3.0
    partial = fg.head_gain_row("b", "k", vanilla.iloc[:2], head.iloc[:2])
    assert partial["vanilla_fg"] != partial["vanilla_fg"]  # NaN: the FG-OVD Mean Rank needs all eight
    # with the intervals of both: each fg's, and the gain's paired one turned around (gain = vanilla - head)
    intervals = {"vanilla": {"fg_ci_low": 2.9, "fg_ci_high": 3.1},
                 "head": {"fg_ci_low": 1.9, "fg_ci_high": 2.1, "fg_vs_vanilla": -1.0, "fg_vs_vanilla_ci_low": -1.2,
                          "fg_vs_vanilla_ci_high": -0.8, "fg_vs_vanilla_p": 0.0}}
    sure = fg.head_gain_row("b", "paper-linear", vanilla, head, intervals)
    assert (sure["vanilla_fg_ci_low"], sure["head_fg_ci_high"]) == (2.9, 2.1)
    assert (sure["gain_ci_low"], sure["gain_ci_high"], sure["gain_p"]) == (0.8, 1.2, 0.0)
    shown = fg.with_ci(pd.DataFrame([sure]), "backbone", "vanilla_fg", "gain", "gain_p")
    assert list(shown.columns) == ["backbone", "vanilla_fg", "gain", "gain_p"]
    assert shown.loc[0, "vanilla_fg"] == "3.000 [2.900, 3.100]" and shown.loc[0, "gain"] == "1.000 [0.800, 1.200]"
    assert shown.loc[0, "gain_p"] == 0.0  # a column without an interval stays as it is


def test_sweep_folder_names_and_registered_figures(cache_dir, smoke, tmp_path):
    tiny = fg.sweep_for(smoke, "tiny", fg.model_set("tiny").pairs())
    assert tiny.name == "sweep-tiny" and tiny.folder == cache_dir / "results" / "smoke" / "sweep-tiny"
    custom = fg.sweep_for(smoke, "custom", [("fgclip-tiny", None)])
    assert custom.name.startswith("sweep-custom-s") and custom.settings_key
    assert {s.name for s in fg.sweeps_of("smoke")} == {tiny.name, custom.name}
    assert Run.from_folder(tiny.folder) == tiny

    tables = fg.sweep_vanilla(smoke, tiny.backbones, device="cpu", progress=False)
    assert (tables.backbones["vanilla_fg_ci_low"] < tables.backbones["vanilla_fg_ci_high"]).all()  # all eight
    fg.save_table(tables.backbones, "nb04_backbones", tiny)
    fg.save_table(tables.vanilla, "nb04_vanilla", tiny)
    better = tables.vanilla.assign(mean_rank_at_n=1 + (tables.vanilla["mean_rank_at_n"] - 1) / 2)
    heads = pd.DataFrame([fg.head_gain_row(b, "paper-linear", part, better[better["backbone"] == b])
                          for b, part in tables.vanilla.groupby("backbone")])
    fg.save_table(heads, "nb04_heads", tiny)
    assert list(heads["gap_closed"]) == pytest.approx([0.5] * 3)

    saved, skipped = fg.plots.figures.redraw_all("smoke", tmp_path / "figs")
    names = sorted(p.name for p in saved)
    stems = ("fig09_sweep_heatmap", "fig10_sweep_size", "fig11_sweep_head_gain")
    assert names == sorted(f"{stem}_smoke_sweep-tiny.{ext}" for stem in stems for ext in ("pdf", "png"))
    assert any("sweep-custom" in reason and "nb04_vanilla" in reason for reason in skipped)
    with pytest.raises(ValueError, match="drawn per run, not per sweep"):
        fg.draw_figure("fig01_split_mean_rank", tiny)
    with pytest.raises(ValueError, match="drawn per sweep, not per run"):
        fg.draw_figure("fig09_sweep_heatmap", fg.Run("smoke", (("fgclip-tiny", None),), "random:0", {}))


def test_weights_not_yet_cached_must_fit_before_a_sweep_downloads_any(cache_dir, smoke, tmp_path, monkeypatch, capsys):
    """With drive_cache the weights go to Drive: a panel whose weights would not fit stops before its first
    download, naming a smaller panel; weights already cached count as nothing to fetch."""
    import shutil
    from collections import namedtuple

    import open_clip

    from fgclip_utils.cache import WEIGHTS_ENV, InsufficientSpace
    from fgclip_utils.extraction.clip_models import check_weights_space, parameter_counts, weights_cached

    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(0, 0, 15e9))
    assert check_weights_space([("fgclip-tiny", None)]) == 0 and weights_cached("fgclip-tiny", None)
    assert not weights_cached("ViT-B-16", "openai")
    need = check_weights_space([("ViT-B-16", "openai")])
    assert need == parameter_counts("ViT-B-16")[0] * 4
    assert "fetching the weights of 1 backbone(s)" in capsys.readouterr().out
    repo = open_clip.get_pretrained_cfg("ViT-B-16", "openai")["hf_hub"].rstrip("/").replace("/", "--")
    snapshot = tmp_path / "weights" / f"models--{repo}" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    assert not weights_cached("ViT-B-16", "openai")  # a snapshot folder without its file is not a download
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(b"weights")
    assert weights_cached("ViT-B-16", "openai") and check_weights_space([("ViT-B-16", "openai")]) == 0
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(0, 0, 5e9))
    with pytest.raises(InsufficientSpace, match=r"the weights of 3 backbone\(s\) need about 4.\d GB .* smaller panel"):
        fg.sweep_vanilla(smoke, fg.model_set("openai").pairs(), progress=False)  # nothing loaded: no network needed
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(0, 0, 1e9))
    with pytest.raises(InsufficientSpace, match=r"the weights of 1 backbone\(s\) need about 0.6 GB"):
        fg.load_clip("ViT-B-32", "openai", device="cpu")  # every notebook's backbone, before open_clip fetches it
