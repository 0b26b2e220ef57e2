"""Store: hostile names never escape their zone, symlinks are never followed,
copies are verified byte for byte."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sanitizer.quarantine.errors import UnsafePathError
from sanitizer.quarantine.store import (
    MAX_NAME_CHARS,
    Store,
    check_dataset_name,
    display_name,
    stored_name,
    unsafe_name_problem,
)

HOSTILE_NAMES = [
    "..",
    ".",
    "",
    "a/../../etc/passwd",
    "/etc/passwd",
    "..\\..\\win.csv",
    "bell\x07.csv",
    "new\nline.csv",
    "esc\x1b[31mred.csv",
    "rtl\u202eoverride.csv",
    "x" * (MAX_NAME_CHARS + 1) + ".csv",
    " padded.csv",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_refused_and_never_used_as_paths(name: str) -> None:
    assert unsafe_name_problem(name) is not None
    safe = stored_name(name)
    assert safe.startswith("data.") and "/" not in safe and unsafe_name_problem(safe) is None
    shown = display_name(name)
    assert shown.isprintable() and len(shown) <= MAX_NAME_CHARS


@pytest.mark.parametrize("name", ["batch-2026-11-28.csv", "b 1.parquet", "données.csv"])
def test_ordinary_names_are_kept(name: str) -> None:
    assert unsafe_name_problem(name) is None
    assert stored_name(name) == name


@pytest.mark.parametrize("name", ["manifest.json", "report.html", ".hidden.csv", "_SUCCESS"])
def test_reserved_or_hidden_names_are_renamed_in_batch_folders(name: str) -> None:
    assert stored_name(name).startswith("data.")


@pytest.mark.parametrize("dataset", ["..", "a/b", "", "x" * 101, "bad name", "-x", "a..b"])
def test_dataset_names_must_be_plain_folder_names(dataset: str) -> None:
    with pytest.raises(UnsafePathError, match="cannot be used as a folder name"):
        check_dataset_name(dataset)


def test_batch_and_zone_paths_stay_inside_the_root(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    with pytest.raises(UnsafePathError):
        store.batch_dir("quarantine", "credit", "../../etc")
    with pytest.raises(UnsafePathError):
        store.write_bytes(str(tmp_path / "root" / ".." / "escaped.txt"), b"x")
    with pytest.raises(UnsafePathError):
        store.remove_file("/etc/passwd")
    assert not (tmp_path / "escaped.txt").exists()
    assert store.inside(store.batch_dir("accepted", "credit", "ab" * 8), store.root)


def test_landing_listing_classifies_without_following_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    landing = root / "landing" / "credit"
    landing.mkdir(parents=True)
    outside = tmp_path / "secret.csv"
    outside.write_text("a,b\n1,2\n")
    (landing / "ok.csv").write_text("a\n1\n")
    (landing / ".ok.csv.part").write_text("partial")
    (landing / "_SUCCESS").write_text("")
    (landing / "ok.csv.ready").write_text("")
    (landing / "sub").mkdir()
    os.symlink(outside, landing / "link_out.csv")
    os.symlink(landing / "ok.csv", landing / "link_in.csv")
    os.symlink(tmp_path, landing / "dirlink")
    (landing / "ctl\x01.csv").write_text("a\n1\n")
    entries = {
        e.name: e.kind for e in Store(str(root)).list_landing("credit", marker_suffix=".ready")
    }
    assert entries == {
        "ok.csv": "file",
        ".ok.csv.part": "hidden",
        "_SUCCESS": "hidden",
        "ok.csv.ready": "marker",
        "sub": "directory",
        "link_out.csv": "symlink",
        "link_in.csv": "symlink",
        "dirlink": "symlink",
        "ctl\x01.csv": "file",  # listed; the runner quarantines it as unsafe_name
    }


def test_copy_is_byte_for_byte_and_hash_verified(tmp_path: Path) -> None:
    store = Store(f"file://{tmp_path / 'root'}")
    src = tmp_path / "root" / "landing" / "credit" / "b.bin"
    src.parent.mkdir(parents=True)
    payload = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(payload)
    dst = store.batch_dir("quarantine", "credit", "ab" * 8) + "/b.bin"
    digest = store.copy_file(str(src), dst)
    assert digest == hashlib.sha256(payload).hexdigest() == store.sha256(dst)[0]
    assert Path(dst).read_bytes() == payload
    assert not list(Path(dst).parent.glob(".*.part"))  # temp name renamed away
