import numpy as np
import pytest
import torch

from fgclip_utils.extraction.row_file import RowFile


def rows(start, stop, dim=3):
    return torch.arange(start * dim, stop * dim, dtype=torch.float32).reshape(-1, dim)


def test_rows_stream_to_a_valid_npy_and_resume_after_interruption(tmp_path):
    path = tmp_path / "m.npy"
    with RowFile(path, 10, 3) as store:
        store.write(0, rows(0, 4))
    # a later run resumes after the rows already written; repeated rows are skipped
    store = RowFile(path, 10, 3)
    assert store.done == 4 and not store.complete
    store.write(2, rows(2, 7))
    store.write(7, rows(7, 10))
    assert store.complete
    assert torch.equal(store.read(), rows(0, 10))
    store.close()
    assert np.load(path).shape == (10, 3)  # a plain .npy


def test_a_torn_row_is_dropped_and_a_foreign_file_restarts(tmp_path):
    path = tmp_path / "m.npy"
    with RowFile(path, 5, 3) as store:
        store.write(0, rows(0, 2))
    with open(path, "ab") as fh:
        fh.write(b"\x00" * 5)  # killed in the middle of a row
    with RowFile(path, 5, 3) as store:
        assert store.done == 2
        store.write(2, rows(2, 5))
        assert torch.equal(store.read(), rows(0, 5))
    with RowFile(path, 6, 3) as store:  # another shape: not this matrix, start afresh
        assert store.done == 0


def test_gaps_wrong_shapes_and_incomplete_reads_are_errors(tmp_path):
    store = RowFile(tmp_path / "m.npy", 4, 3)
    with pytest.raises(ValueError, match="rows must come in order"):
        store.write(1, rows(1, 2))
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        store.write(0, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="exceed the declared 4"):
        store.write(0, rows(0, 5))
    store.write(0, rows(0, 2))
    with pytest.raises(RuntimeError, match="only 2 of 4 rows"):
        store.read()
    store.discard()
    assert not (tmp_path / "m.npy").exists()


def test_a_second_writer_is_refused_until_the_first_closes(tmp_path):
    from conftest import row_file_held_by_another_process

    from fgclip_utils.extraction.row_file import RowFileBusy

    with RowFile(tmp_path / "m.npy", 4, 3) as first:
        first.write(0, rows(0, 1))
    with row_file_held_by_another_process(tmp_path / "m.npy", 4, 3), \
            pytest.raises(RowFileBusy, match="being written by another process"):
        RowFile(tmp_path / "m.npy", 4, 3)
    with RowFile(tmp_path / "m.npy", 4, 3) as second:
        assert second.done == 1


def test_resume_stops_at_the_first_row_that_fails_the_check(tmp_path):
    path = tmp_path / "m.npy"
    block = rows(0, 6)
    block[3, 1] = float("nan")
    with RowFile(path, 8, 3, check=lambda r: np.ones(len(r), dtype=bool)) as store:
        store.write(0, block)  # written by a run whose check let the NaN row through
    with RowFile(path, 8, 3) as store:  # the default check: finite rows only
        assert store.done == 3  # the NaN row and everything after it will be written again
        store.write(3, rows(3, 8))
        assert torch.equal(store.read(), rows(0, 8))
    with RowFile(path, 8, 3, check=lambda r: r[:, 0] < 9) as store:  # a check that rejects row 3 (value 9)
        assert store.done == 3
        store.truncate(1)
        assert store.done == 1 and path.stat().st_size == len(store.header) + 3 * 4
