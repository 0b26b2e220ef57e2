from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sanitizer.errors import InputError
from sanitizer.io import read_table, table_format, write_table


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_reads_csv_and_parquet_alike(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "label": [0, 1, 0]})
    write_table(frame, tmp_path / "t.csv")
    write_table(frame, tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        got = read_table(tmp_path / name)
        assert list(got.columns) == ["a", "b", "label"]
        assert got["a"].tolist() == [1, 2, 3]
        assert isinstance(got.index, pd.RangeIndex)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.csv", b"", "file is empty"),
        ("blank.csv", b"\n\n  \n", "file is empty"),
        ("header.csv", b"a,b,label\n", "header but no data rows"),
        ("dupes.csv", b"a,a,label\n1,2,0\n", "duplicate column names: 'a'"),
        ("ragged.csv", b"a,b,label\n1,2,0\n1,2\n", "line 3 has 2 fields, the header has 3"),
        ("long.csv", b"a,b,label\n1,2,0,9\n", "malformed CSV"),
        ("latin1.csv", "a,b,label\n1,caf\xe9,0\n".encode("latin-1"), "not valid UTF-8"),
        ("noname.csv", b"a,,label\n1,2,0\n", "empty column names"),
        ("trunc.parquet", b"PAR1\x00\x01garbage", "not a readable Parquet file"),
    ],
)
def test_bad_files_raise_one_clear_error(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = _write(tmp_path / name, data)
    with pytest.raises(InputError, match=message) as info:
        read_table(path)
    assert name in str(info.value)
    assert path.read_bytes() == data  # nothing modified


def test_truncated_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": range(1000), "label": [0, 1] * 500})
    write_table(frame, tmp_path / "full.parquet")
    data = (tmp_path / "full.parquet").read_bytes()
    path = _write(tmp_path / "cut.parquet", data[: len(data) // 2])
    with pytest.raises(InputError, match="Parquet"):
        read_table(path)


def test_missing_path_directory_and_extension(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        read_table(tmp_path / "dir.csv")
    with pytest.raises(InputError, match=r"unsupported file type '\.xlsx'"):
        read_table(tmp_path / "data.xlsx")
    assert table_format("X.PARQUET") == "parquet"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-(10**9), 10**9), st.text(st.characters(codec="utf-8"), max_size=8)),
        min_size=1,
        max_size=20,
    )
)
def test_csv_round_trip_of_any_text(tmp_path_factory: pytest.TempPathFactory, rows: list) -> None:
    """Whatever text a cell holds, a file we wrote reads back as the same table."""
    frame = pd.DataFrame(rows, columns=["n", "s"])
    path = tmp_path_factory.mktemp("rt") / "t.parquet"
    write_table(frame, path)
    got = read_table(path)
    assert got["n"].tolist() == frame["n"].tolist()
    assert got["s"].tolist() == frame["s"].tolist()
