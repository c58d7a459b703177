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
