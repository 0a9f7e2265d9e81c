"""A progress bar on stderr for the CLI's long single jobs (an edit, a generation).

The library reports ``(done, total)`` through a callback (``Editor.edit(progress=...)``,
``Generator.generate(on_step=...)``); this turns the reports into a tqdm bar that appears only on
a terminal (tqdm's ``disable=None``), so piped or captured output stays clean.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, TextIO

from tqdm.auto import tqdm


@contextlib.contextmanager
def progress_bar(desc: str, unit: str, disable: bool | None = None, file: TextIO | None = None,
                 mininterval: float = 0.1) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``report(done, total)`` callback that drives one bar, made on the first report
    (``mininterval``: tqdm's least seconds between redraws)."""
    bar = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit=unit, disable=disable, file=file, leave=False, mininterval=mininterval)
        bar.update(done - bar.n)

    try:
        yield report
    finally:
        if bar is not None:
            bar.close()
