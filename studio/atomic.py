"""Atomic file writes: write to a temp file in the same folder, fsync, then rename over the target.

A crash (or kill -9) mid-write leaves the previous file intact and at most a stray `.tmp-*` file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """`open()` for writing, atomically. Text mode by default (UTF-8, LF newlines)."""
    with atomic_path(target) as tmp:
        if "b" in mode:
            with open(tmp, mode) as fh:
                yield fh
        else:
            with open(tmp, mode, encoding=encoding, newline="\n") as fh:
                yield fh


def write_parquet_atomic(df, target: str | os.PathLike) -> None:
    with atomic_path(target) as tmp:
        df.write_parquet(tmp)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 with RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def staging_dir(target: str | os.PathLike) -> Path:
    """A new empty folder beside `target` (same file system) to build a replacement of it in."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.staged-", dir=target.parent))
    umask = os.umask(0o022)
    os.umask(umask)
    staged.chmod(0o777 & ~umask)  # the folder gets the permissions a plain mkdir would give, not mkdtemp's 0700
    return staged


def publish_dir(staged: Path, target: str | os.PathLike) -> None:
    """Put the complete folder `staged` in place of `target`, so that a crash at any point leaves either the old
    or the new folder at `target`, never a mix. A missing or empty `target` is replaced by one rename; a full one
    is swapped with `staged` in one atomic exchange (Linux), and the old contents are then removed from the
    staging path. Where the file system cannot exchange, the old folder is renamed aside first (a crash between
    the two renames leaves `target` missing and both versions beside it)."""
    import shutil

    target = Path(target)
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        os.replace(staged, target)
    elif _exchange(staged, target):
        shutil.rmtree(staged)
    else:
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, aside)
        os.replace(staged, target)
        shutil.rmtree(aside)
    _fsync_dir(target.parent)
