"""Read and write batch files (CSV and Parquet) with errors a user can act on."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sanitizer.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES


def table_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"`` by file extension; anything else is an ``InputError``."""
    suffix = Path(path).suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise InputError(
        f"unsupported file type {suffix or '(no extension)'!r}; "
        f"expected one of {', '.join(SUPPORTED_SUFFIXES)}",
        path=str(path),
    )


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a batch or reference file into a DataFrame.

    The result has a RangeIndex, so index labels are 0-based data-row positions
    in the file. Every way a file can be unreadable raises ``InputError`` with
    the path and the problem; the file itself is never modified.
    """
    p = Path(path)
    fmt = table_format(p)
    if not p.exists():
        raise InputError("file does not exist", path=str(p))
    if p.is_dir():
        raise InputError("is a directory, not a file", path=str(p))
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path=str(p)) from exc
    if not data.strip():
        raise InputError("file is empty", path=str(p))
    frame = _read_csv_bytes(data, str(p)) if fmt == "csv" else _read_parquet_bytes(data, str(p))
    _check_columns(frame, str(p))
    if len(frame) == 0:
        raise InputError("file has a header but no data rows", path=str(p))
    return frame


def _read_csv_bytes(data: bytes, path: str) -> pd.DataFrame:
    import pandas as pd

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})", path=path
        ) from exc
    header, width = _csv_header(text, path)
    _check_duplicate_names(header, path)
    try:
        frame = pd.read_csv(io.StringIO(text), on_bad_lines="error", low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise InputError("file is empty", path=path) from exc
    except pd.errors.ParserError as exc:
        raise InputError(f"malformed CSV: {_first_line(exc)}", path=path) from exc
    if frame.shape[1] != width:
        raise InputError("malformed CSV: rows have more fields than the header", path=path)
    # pandas fills short rows with NaN and turns a longer first row's extra field into
    # an index, silently; a ragged file is malformed. Only a frame with missing values
    # or a non-default index can hide one, so clean files are parsed once.
    if not isinstance(frame.index, pd.RangeIndex) or frame.isna().to_numpy().any():
        _check_ragged_rows(text, width, path)
    return frame.reset_index(drop=True)


def _csv_header(text: str, path: str) -> tuple[list[str], int]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise InputError(f"malformed CSV header: {exc}", path=path) from exc
    if not header or all(not h.strip() for h in header):
        raise InputError("CSV header is empty", path=path)
    return header, len(header)


def _check_ragged_rows(text: str, width: int, path: str) -> None:
    reader = csv.reader(io.StringIO(text))
    next(reader)
    for line_no, row in enumerate(reader, start=2):
        if row and len(row) != width:
            raise InputError(
                f"malformed CSV: line {line_no} has {len(row)} fields, the header has {width}",
                path=path,
            )


def _read_parquet_bytes(data: bytes, path: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"not a readable Parquet file ({_first_line(exc)})", path=path) from exc
    _check_duplicate_names(table.column_names, path)
    try:
        frame = table.to_pandas()
    except (pa.ArrowException, ValueError) as exc:
        raise InputError(f"cannot convert Parquet data: {_first_line(exc)}", path=path) from exc
    return frame.reset_index(drop=True)


def _check_duplicate_names(names: list[str], path: str) -> None:
    seen: set[str] = set()
    dupes: list[str] = []
    for name in names:
        if name in seen and name not in dupes:
            dupes.append(name)
        seen.add(name)
    if dupes:
        raise InputError(f"duplicate column names: {', '.join(map(repr, dupes))}", path=path)


def _check_columns(frame: pd.DataFrame, path: str) -> None:
    if frame.shape[1] == 0:
        raise InputError("file has no columns", path=path)
    unnamed = [str(c) for c in frame.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        raise InputError(f"header has empty column names ({', '.join(unnamed)})", path=path)


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write CSV or Parquet by extension (no index), creating parent folders."""
    p = Path(path)
    fmt = table_format(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(p, index=False)
    else:
        frame.to_parquet(p, index=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
