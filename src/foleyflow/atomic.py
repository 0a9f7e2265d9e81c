"""Atomic file output: write beside the destination, then rename.

A crash or an error never leaves a half-written file at the destination path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the destination's folder; rename it into place on success.

    The temporary file keeps the destination's suffix so that writers that infer the
    format from the name (soundfile, matplotlib) still do the right thing.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    suffix = destination.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=f".tmp{suffix}", dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    current = os.umask(0)  # the only portable way to read it is to set it
    os.umask(current)
    return current


_UMASK = _read_umask()  # once, at import: setting the umask per write would race other threads' file creation
