import pytest

from fgclip_utils.data.fgovd import SPLITS
from fgclip_utils.data.reported_results import REPORTED_DETECTORS_CSV, reported_detectors


def test_shipped_detector_numbers_are_complete_and_sourced():
    table = reported_detectors()
    assert len(table) == 32 and table["detector"].nunique() == 4
    assert set(table["split"]) == set(SPLITS) and (table["metric"] == "mAP").all()
    assert table["value"].between(0, 100).all() and table["source"].str.contains("FG-OVD").all()
    # spot-check two cells against the source table
    cell = table.set_index(["detector", "split"])["value"]
    assert cell[("OWL (B/16)", "trivial")] == 53.9 and cell[("OWLv2 (L/14)", "transparency")] == 12.2


@pytest.mark.parametrize("row, message", [
    ("OWL,very-hard,mAP,1.0,x", r"row 0: field 'split' 'very-hard'"),
    ("OWL,hard,mAP,high,x", r"row 0: field 'value' 'high' is not a number"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, row, message):
    path = tmp_path / "reported.csv"
    path.write_text("detector,split,metric,value,source\n" + row + "\n")
    with pytest.raises(ValueError, match=message) as err:
        reported_detectors(path)
    assert str(path) in str(err.value)


def test_wrong_columns_are_rejected(tmp_path):
    path = tmp_path / "reported.csv"
    path.write_text("model,split,value\nOWL,hard,1\n")
    with pytest.raises(ValueError, match="columns must be"):
        reported_detectors(path)
    assert REPORTED_DETECTORS_CSV.exists()


def test_both_paper_tables_are_complete_and_sourced():
    from fgclip_utils.data.reported_results import PAPER_COLUMNS, paper_results

    for name in ("A", "B"):
        table = paper_results(name)
        assert list(table.columns) == PAPER_COLUMNS and len(table) == 11
        assert table.groupby("stage").size().to_dict() == {"fg-ovd": 5, "vanilla": 1, "warmup": 5}
        assert table["source"].str.contains("FG-CLIP").all()
        assert table[["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"]].stack().between(0, 100).all()
    a, b = paper_results("A").set_index(["method", "stage"]), paper_results("B").set_index(["method", "stage"])
    # Table A's fg is the sum of the 8 splits' mean ranks, Table B's their mean: 23.8 / 8 = 2.98 for vanilla
    assert a.loc[("CLIP B/16", "vanilla"), "fg"] == 23.8 and b.loc[("CLIP B/16", "vanilla"), "fg"] == 2.98
    assert round(a.loc[("CLIP B/16", "vanilla"), "fg"] / 8, 2) == b.loc[("CLIP B/16", "vanilla"), "fg"]
    assert b.loc[("mlp", "fg-ovd"), "i2t_r1"] == 31.9 and a.loc[("attention", "warmup"), "t2i_r10"] == 70.3
    with pytest.raises(ValueError, match="table must be 'A' or 'B'"):
        paper_results("C")


def test_the_openclip_sanity_row():
    from fgclip_utils.data.reported_results import openclip_coco_reference

    row = openclip_coco_reference().set_index(["model", "pretrained"]).loc[("ViT-B-16", "openai")]
    assert (row["i2t_r1"], row["t2i_r1"]) == (52.42, 33.09) and "open_clip" in row["source"]
