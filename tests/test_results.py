"""Result tables and records are kept per run (backbone and settings), verified when read, and described by JSON
records in the style of CLIP_benchmark."""
import json
from dataclasses import replace

import pandas as pd
import pytest

from fgclip_utils import results
from fgclip_utils.extraction.clip_models import load_clip
from fgclip_utils.profiles import get_profile


def _table():
    return pd.DataFrame({"method": ["m", "m"], "split": ["hard", "color"], "paper_n": [10, 10],
                         "mean_rank_at_n": [2.5, 1.5], "n_kept": [3, 4], "accuracy": [0.5, 0.75], "n": [3, 4]})


def test_runs_are_named_by_backbone_and_by_settings_that_differ(cache_dir, tiny_clip):
    P = get_profile("smoke")
    run = results.run_for(P, tiny_clip)
    assert run.name == "fgclip-tiny-random0" and run.folder == cache_dir / "results" / "smoke" / run.name
    other_weights = results.run_for(P, load_clip("fgclip-tiny", device="cpu", seed=1))
    scaled = results.run_for(replace(P, extract=replace(P.extract, scale_factor=1.5)), tiny_clip)
    assert other_weights.name == "fgclip-tiny-random1"
    assert scaled.name.startswith("fgclip-tiny-random0-s") and scaled.settings_key
    assert "settings" in scaled.describe() and "settings" not in run.describe()
    # the run record restores the profile the numbers came from
    again = results.Run.from_folder(scaled.folder)
    assert again.name == scaled.name and again.profile_object().extract.scale_factor == 1.5
    assert {r.name for r in results.runs_of("smoke")} == {run.name, other_weights.name, scaled.name}


def test_two_backbones_write_side_by_side(cache_dir, tiny_clip):
    P = get_profile("smoke")
    first = results.run_for(P, tiny_clip)
    second = results.run_for(P, load_clip("fgclip-tiny", device="cpu", seed=1))
    results.save_table(_table(), "nb01_vanilla_clip", first)
    results.save_table(_table().assign(mean_rank_at_n=[9.0, 9.0]), "nb01_vanilla_clip", second)
    assert results.load_table("nb01_vanilla_clip", first)["mean_rank_at_n"].tolist() == [2.5, 1.5]
    assert results.load_table("nb01_vanilla_clip", second)["mean_rank_at_n"].tolist() == [9.0, 9.0]


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:-10]), "truncated or edited"),
    (lambda p: p.write_text(p.read_text().splitlines()[0] + "\n"), "truncated or edited"),  # header only
    (lambda p: p.with_name(p.name + ".json").unlink(), "manifest"),
])
def test_a_damaged_table_is_an_error_naming_the_file(cache_dir, tiny_clip, damage, message):
    run = results.run_for(get_profile("smoke"), tiny_clip)
    path = results.save_table(_table(), "nb01_vanilla_clip", run)
    damage(path)
    with pytest.raises(results.ResultTableError, match=message) as err:
        results.load_table("nb01_vanilla_clip", run)
    assert str(path) in str(err.value)


def test_a_table_must_have_its_schema(cache_dir, tiny_clip):
    run = results.run_for(get_profile("smoke"), tiny_clip)
    with pytest.raises(results.ResultTableError, match=r"lacks the columns \['paper_n'"):
        results.save_table(_table().drop(columns=["paper_n"]), "nb01_vanilla_clip", run)
    with pytest.raises(KeyError, match="unknown result table"):
        results.save_table(_table(), "nb09_nothing", run)
    with pytest.raises(FileNotFoundError, match="run the notebook"):
        results.load_table("nb03_umap", run)


def test_records_say_what_made_each_number(cache_dir, tiny_clip, synth_bench):
    run = results.run_for(get_profile("smoke"), tiny_clip)
    paths, _ = synth_bench
    written = results.record_split_table(run, _table(), {"hard": paths["hard"], "color": paths["color"]},
                                         "synthetic")
    assert [p.name for p in written] == ["synthetic_hard_random-0_fgclip-tiny_en_fine_grained_ranking.json",
                                         "synthetic_color_random-0_fgclip-tiny_en_fine_grained_ranking.json"]
    record = json.loads(written[0].read_text())
    assert record["model"] == "fgclip-tiny" and record["pretrained"] is None and record["weights_id"] == "random:0"
    assert record["metrics"]["mean_rank_at_n"] == 2.5 and record["metrics"]["paper_n"] == 10
    assert record["split_file"] == "1_attributes.json" and len(record["split_file_sha256"]) == 64
    assert record["versions"]["torch"] and record["settings"]["extract"]["scale_factor"] == 1.0
    assert record["run"] == run.name and record["task"] == "fine_grained_ranking"
    assert len(results.read_records(cache_dir / "results")) == 2
