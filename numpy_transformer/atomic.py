"""Writing files so that a failure never leaves half a file: write a temporary file beside the
target, flush it to disk, then rename it over the target (a rename within one folder is atomic).
A crash or an exception at any point leaves either the old file or the new one, never a mix."""
import os
import tempfile
from contextlib import contextmanager


@contextmanager
def atomic_open(path, mode="wb", encoding=None):
    """with atomic_open(path, "w", encoding="utf-8") as f: f.write(...)  — the file appears at path
    only if the block finishes; on any exception the temporary file is removed and path is untouched."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write {path!r}: folder {folder!r} does not exist")
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~current_umask())   # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def current_umask():
    """The process's umask (reading it means setting it; it is put straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
