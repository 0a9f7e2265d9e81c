"""Training checkpoints: everything needed to resume exactly, written atomically, never pickled.

A checkpoint is a folder ``<run>/checkpoints/step-NNNNNNNN/``:
    modules.safetensors          weights and buffers of every trained module ("unet.conv_in.weight")
    ema.safetensors              EMA shadow weights (when EMA is on)
    optimizer-<group>.safetensors + optimizer-<group>.json   AdamW moments + param groups / scalars
    rng-rank<R>.safetensors + rng-rank<R>.json               torch (CPU, CUDA), numpy, python RNG
    trainer_state.json           step, data position, LR schedules, grad scaler, EMA count, history
It is written under a temporary name and renamed into place once complete, so a run killed at
any instant leaves either the previous checkpoints or a complete new one; ``trainer_state.json``
is written last as a second guard. Optimizer state is split into tensors (safetensors) and plain
values (JSON) because a ``torch.save`` pickle would have to be unpickled to resume.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from foleyflow.atomic import atomic_path
from foleyflow.errors import InputError

STATE_NAME = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def partial_dir(run_dir: Path, step: int) -> Path:
    return checkpoint_root(run_dir) / f".{checkpoint_name(step)}.partial"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints, oldest first (partial folders are ignored)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    return sorted(folder for folder in root.iterdir() if _STEP_DIR.match(folder.name) and (folder / STATE_NAME).is_file())


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    complete = complete_checkpoints(run_dir)
    return complete[-1] if complete else None


def begin_checkpoint(run_dir: Path, step: int) -> Path:
    """Create an empty temporary folder for the checkpoint of ``step`` (main process only)."""
    folder = partial_dir(run_dir, step)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def commit_checkpoint(run_dir: Path, step: int, keep: int) -> Path:
    """Rename the finished temporary folder into place and delete all but the ``keep`` newest."""
    final = checkpoint_root(run_dir) / checkpoint_name(step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial_dir(run_dir, step), final)
    _fsync_dir(final.parent)
    steps = sorted(folder for folder in checkpoint_root(run_dir).iterdir() if _STEP_DIR.match(folder.name))
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in checkpoint_root(run_dir).glob(".step-*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def write_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    # clone: safetensors refuses tensors that share storage (tied weights).
    payload = {key: value.detach().cpu().clone().contiguous() for key, value in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(payload, str(tmp))
        _fsync(tmp)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"{path}: missing from the checkpoint")
    return load_file(str(path))


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        _fsync(tmp)


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: missing from the checkpoint")
    return json.loads(path.read_text())


# --- optimizer state -------------------------------------------------------------------------


def save_optimizer(folder: Path, group: str, state_dict: Mapping[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    write_tensors(folder / f"optimizer-{group}.safetensors", tensors)
    write_json(folder / f"optimizer-{group}.json", {"param_groups": state_dict["param_groups"], "scalars": scalars})


def load_optimizer(folder: Path, group: str) -> dict[str, Any]:
    tensors = read_tensors(folder / f"optimizer-{group}.safetensors")
    meta = read_json(folder / f"optimizer-{group}.json")
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


# --- random number generators ----------------------------------------------------------------


def capture_rng() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """This process's python, numpy and torch RNG states as (JSON values, tensors)."""
    version, mt_state, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    plain = {
        "python": [version, list(mt_state), gauss_next],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }
    tensors = {"torch": torch.get_rng_state()}
    for device in range(plain["cuda_devices"]):
        tensors[f"cuda{device}"] = torch.cuda.get_rng_state(device)
    return plain, tensors


def restore_rng(plain: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    version, mt_state, gauss_next = plain["python"]
    random.setstate((version, tuple(mt_state), gauss_next))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        for device in range(min(plain["cuda_devices"], torch.cuda.device_count())):
            torch.cuda.set_rng_state(tensors[f"cuda{device}"], device)


def save_rng(folder: Path, rank: int) -> None:
    plain, tensors = capture_rng()
    write_tensors(folder / f"rng-rank{rank}.safetensors", tensors)
    write_json(folder / f"rng-rank{rank}.json", plain)


def load_rng(folder: Path, rank: int) -> None:
    if not (folder / f"rng-rank{rank}.json").is_file():
        raise InputError(f"{folder}: no RNG state for process {rank}; resume with the same number of processes")
    restore_rng(read_json(folder / f"rng-rank{rank}.json"), read_tensors(folder / f"rng-rank{rank}.safetensors"))


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # not every platform can open a directory
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
