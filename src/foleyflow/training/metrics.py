"""A run's ``metrics.jsonl`` (written by the trainer) read back as loss curves.

One JSON object per line: ``{"step": N, "split": "train" | "val", figure: value, ...}``. The
same figures go to TensorBoard, but this plain file is what tools read, so plotting a run needs
no event-file parser.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from foleyflow.data.manifest import numbered_jsonl
from foleyflow.errors import InputError

METRICS_NAME = "metrics.jsonl"


def metrics_path(run: str | os.PathLike) -> Path:
    """The metrics file of a run folder (or the file itself)."""
    path = Path(run).expanduser()
    return path / METRICS_NAME if path.is_dir() else path


def read_metrics(run: str | os.PathLike) -> list[dict[str, Any]]:
    path = metrics_path(run)
    if not path.is_file():
        raise InputError(f"{path}: no such metrics file (a run folder written by `foleyflow train` holds {METRICS_NAME})")
    records = []
    for number, record in numbered_jsonl(path):
        try:
            int(record["step"]), str(record["split"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}:{number}: expected a JSON object with step and split") from None
        records.append(record)
    if not records:
        raise InputError(f"{path}: no metrics logged yet")
    return records


def loss_curves(records: list[dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """"split/figure" -> (steps, values) for every figure whose name ends in "loss".

    A resumed run re-logs the steps after its checkpoint (the trainer truncates the file on
    resumption), so a step appears once per series; the last value wins if one repeats.
    """
    series: dict[str, dict[int, float]] = {}
    for record in records:
        for key, value in record.items():
            if key in ("step", "split") or not key.endswith("loss") or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            label = key if key.startswith(record["split"]) else f"{record['split']}/{key}"
            series.setdefault(label, {})[int(record["step"])] = float(value)
    return {label: (sorted(points), [points[step] for step in sorted(points)]) for label, points in series.items()}


def summarise_curves(curves: dict[str, tuple[list[int], list[float]]]) -> list[str]:
    """One line per series: points, last value and the lowest value with its step."""
    lines = []
    for label, (steps, values) in sorted(curves.items()):
        best = min(range(len(values)), key=values.__getitem__)
        lines.append(f"{label}: {len(steps)} points to step {steps[-1]}, last {values[-1]:.4g}, lowest {values[best]:.4g} at step {steps[best]}")
    return lines
