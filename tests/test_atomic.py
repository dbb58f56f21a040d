"""Atomic writes: the target appears whole or not at all, and a failure keeps the old file."""
import pytest

from numpy_transformer.atomic import atomic_open


def test_atomic_open_replaces_only_on_success(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"good old contents")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_open(target, "wb") as f:
            f.write(b"half of the new")
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"good old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]     # no temporary left behind
    with atomic_open(target, "w", encoding="utf-8") as f:
        f.write("new contents")
    assert target.read_text() == "new contents"
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777     # not mkstemp's 0600


def test_atomic_open_names_a_missing_folder_and_a_bad_mode(tmp_path):
    with pytest.raises(ValueError, match="folder .*nowhere.* does not exist"):
        with atomic_open(tmp_path / "nowhere" / "file.txt", "w"):
            pass
    with pytest.raises(ValueError, match="mode 'w' or 'wb', got 'a'"):
        with atomic_open(tmp_path / "file.txt", "a"):
            pass
