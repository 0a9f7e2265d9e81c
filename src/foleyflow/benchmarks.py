"""BENCHMARKS.md: each benchmark owns one ``## Heading`` section and rewrites only that one.

A section runs from its heading line to the next level-2 heading outside a fenced code block
(or the end of the file). Writing a section replaces it in place when it exists and appends it
otherwise, so re-running a benchmark never touches the figures of another.
"""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

from foleyflow.atomic import atomic_path

HEADER = "# Benchmarks\n\nEvery figure here was measured by the command shown above it, on the machine named with it.\n"


def _section_bounds(lines: list[str], heading: str) -> tuple[int, int] | None:
    """(first line, line after the last) of the section titled ``heading``, or None."""
    start, fenced = None, False
    for index, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or not line.startswith("## "):
            continue
        if start is not None:
            return start, index
        if line.rstrip() == heading:
            start = index
    return (start, len(lines)) if start is not None else None


def read_section(path: str | os.PathLike, title: str) -> str | None:
    """The body of ``## title`` in the markdown file ``path`` (without its heading), or None."""
    path = Path(path)
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    bounds = _section_bounds(lines, f"## {title}")
    return None if bounds is None else "\n".join(lines[bounds[0] + 1 : bounds[1]]).strip("\n")


def write_section(path: str | os.PathLike, title: str, body: str) -> Path:
    """Replace (or append) the section ``## title`` of the markdown file ``path`` with ``body``."""
    path = Path(path)
    heading = f"## {title}"
    text = path.read_text() if path.is_file() else HEADER
    lines = text.splitlines()
    section = [heading, "", *body.strip("\n").splitlines(), ""]
    bounds = _section_bounds(lines, heading)
    if bounds is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", *section]
    else:
        lines[bounds[0] : bounds[1]] = section
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines).rstrip("\n") + "\n")
    return path


def machine_description() -> str:
    """What the figures were measured on, e.g. "2-core CPU (AMD EPYC), no GPU, torch 1 thread"."""
    import torch

    cores = os.cpu_count() or 0
    cpu = _cpu_model()
    text = f"{cores}-core CPU" + (f" ({cpu})" if cpu else "")
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    else:
        threads = torch.get_num_threads()
        text += f", no GPU, torch {threads} thread{'s' if threads != 1 else ''}"
    return text


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
