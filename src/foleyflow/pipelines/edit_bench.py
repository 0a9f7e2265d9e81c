"""The editing benchmark on held-out triplets with ground truth (``foleyflow bench edit``).

For every triplet (source, true target, instruction, task) and every method (the editor at
each t_start, the ddpm baseline at the same NFE) we measure the log-mel L1 distance to the true
target of:
    identity  the source through the codec (no edit at all),
    floor     the true target through the codec (the best the codec allows),
    method    the edited output.
Per task type: fraction of the gap closed = (identity - method) / (identity - floor), from the
means (1 = as good as the codec allows, 0 = no better than not editing, < 0 = worse), with a
95% paired bootstrap interval over triplets; time per edit, NFE, the time of one network
forward, and overhead = time per edit / (NFE x forward).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from foleyflow.audio.mel import log_mel
from foleyflow.errors import InputError
from foleyflow.pipelines.editor import Editor

TASKS = ("add", "remove", "replace")


def log_mel_l1(audio: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of the AudioLDM log-mels (frames of the shorter clip)."""
    a, b = log_mel(np.asarray(audio, np.float32))[0], log_mel(np.asarray(reference, np.float32))[0]
    frames = min(a.shape[0], b.shape[0])
    return float(torch.mean(torch.abs(a[:frames] - b[:frames])))


def gap_closed(identity: np.ndarray, floor: np.ndarray, edited: np.ndarray) -> float:
    """(identity - edited) / (identity - floor) on the means."""
    gap = float(np.mean(identity) - np.mean(floor))
    return float("nan") if gap <= 0 else (float(np.mean(identity)) - float(np.mean(edited))) / gap


def test_triplets(split: str = "test", count: int = 300, seed: int = 0, root: str | None = None) -> list[Mapping[str, Any]]:
    """``count`` triplets of the editing set's ``split`` (default folder, or ``root``), balanced over add/remove/replace, seeded."""
    from foleyflow.data.datasets import TripletDataset

    per_task = count // len(TASKS)
    rng = np.random.default_rng(seed)
    chosen = []
    for task in TASKS:
        dataset = TripletDataset(split, root=root, tasks=(task,))
        if len(dataset) < per_task:
            raise InputError(f"the {split} split has {len(dataset)} {task} triplets; {per_task} requested")
        chosen += [dataset[int(i)] for i in rng.permutation(len(dataset))[:per_task]]
    return chosen


def forward_seconds(editor: Editor, repeats: int = 3) -> float:
    """Median time of one UNet forward on one model window (batch 1, conditional branch only)."""
    x = editor.codec.encode(torch.zeros(1, editor.window_samples))
    states, mask = editor.text_encoder.encode(["Add a dog barking"])
    sample = torch.cat([x, x], dim=1)
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            editor.unet(sample, torch.tensor([500.0]), encoder_hidden_states=states, encoder_attention_mask=mask)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_edit_bench(
    model: str,
    triplets: Iterable[Mapping[str, Any]],
    baseline: str | None = None,
    steps: int | None = None,
    t_starts: Sequence[float] = (0.0, 0.01, 0.1),
    seed: int = 0,
    resamples: int = 200,
) -> dict[str, Any]:
    editors = {f"flow t_start={t:g}": (_load(model), {"t_start": t}) for t in t_starts}
    if baseline is not None:
        editors["ddpm (same NFE)"] = (_load(baseline), {})
    steps = steps or next(iter(editors.values()))[0].config.steps
    return compare_editors({name: (editor, {"steps": steps, **options}) for name, (editor, options) in editors.items()}, triplets, seed, resamples, steps)


def compare_editors(
    editors: Mapping[str, tuple[Editor, Mapping[str, Any]]],
    triplets: Iterable[Mapping[str, Any]],
    seed: int = 0,
    resamples: int = 200,
    steps: int | str = "per method",
) -> dict[str, Any]:
    """Score each named (editor, ``Editor.edit`` options) on the same triplets and seeds; the first
    editor's codec gives the identity and floor rows."""
    reference = next(iter(editors.values()))[0]
    scores: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for index, item in enumerate(triplets):
        task, source, target = item["task"], np.asarray(item["source"], np.float32), np.asarray(item["target"], np.float32)
        rows = scores[task]
        rows["identity"].append(log_mel_l1(_through_codec(reference, source), target))
        rows["floor"].append(log_mel_l1(_through_codec(reference, target), target))
        for name, (editor, options) in editors.items():
            result = editor.edit(source, item["instruction"], seed=seed + index, **options)
            rows[name].append(log_mel_l1(result.audio, target))
            rows[f"{name}:seconds"].append(result.elapsed_s)
            rows[f"{name}:nfe"].append(result.nfe)
    forwards = {name: forward_seconds(editor) for name, (editor, _) in editors.items()}
    return summarise(scores, list(editors), forwards, steps, resamples, seed)


def summarise(scores, methods: list[str], forwards: Mapping[str, float], steps: int | str, resamples: int, seed: int) -> dict[str, Any]:
    from foleyflow.evaluation.bootstrap import bootstrap_ci, mean_ci

    report: dict[str, Any] = {"steps": steps, "methods": methods, "tasks": {}}
    for task in TASKS:
        if task not in scores:
            continue
        rows = {key: np.asarray(values, np.float64) for key, values in scores[task].items()}
        identity, floor = rows["identity"], rows["floor"]
        entry = {
            "n": int(identity.size),
            "identity_l1": mean_ci(identity, resamples, seed).to_dict(),
            "floor_l1": mean_ci(floor, resamples, seed).to_dict(),
            "methods": {},
        }
        for name in methods:
            seconds = float(np.mean(rows[f"{name}:seconds"]))
            nfe = int(np.max(rows[f"{name}:nfe"]))
            entry["methods"][name] = {
                "l1": mean_ci(rows[name], resamples, seed).to_dict(),
                "gap_closed": bootstrap_ci(gap_closed, [identity, floor, rows[name]], paired=True, resamples=resamples, seed=seed).to_dict(),
                "seconds_per_edit": seconds,
                "nfe": nfe,
                "forward_seconds": forwards[name],
                "overhead": seconds / (nfe * forwards[name]),
            }
        report["tasks"][task] = entry
    return report


def format_table(report: Mapping[str, Any]) -> str:
    """A Markdown table: one row per task and method."""
    lines = [
        f"steps {report['steps']}; L1 = log-mel L1 to the true target (lower is better); gap closed = (identity - method) / (identity - floor)",
        "",
        "| task | n | method | L1 | gap closed [95% CI] | s / edit | NFE | forward s | overhead |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, entry in report["tasks"].items():
        lines.append(f"| {task} | {entry['n']} | identity (source via codec) | {_ci(entry['identity_l1'])} | 0 | | | | |")
        lines.append(f"| {task} | {entry['n']} | floor (target via codec) | {_ci(entry['floor_l1'])} | 1 | | | | |")
        for name, row in entry["methods"].items():
            lines.append(
                f"| {task} | {entry['n']} | {name} | {_ci(row['l1'])} | {_ci(row['gap_closed'])} | {row['seconds_per_edit']:.2f} |"
                f" {row['nfe']} | {row['forward_seconds']:.3f} | {row['overhead']:.2f} |"
            )
    return "\n".join(lines)


def _ci(estimate: Mapping[str, float]) -> str:
    return f"{estimate['value']:.3f} [{estimate['ci95_low']:.3f}, {estimate['ci95_high']:.3f}]"


def _load(model) -> Editor:
    return model if isinstance(model, Editor) else Editor.from_pretrained(model)


def _through_codec(editor: Editor, audio: np.ndarray) -> np.ndarray:
    """The clip encoded and decoded by the editor's codec, window by window (what an edit could at best keep)."""
    from foleyflow.pipelines import windowing

    def roundtrip(windows: np.ndarray) -> np.ndarray:
        return editor.codec.decode(editor.codec.encode(torch.from_numpy(windows)), editor.window_samples).float().numpy()

    return windowing.process_in_windows(audio, editor.window_samples, editor.overlap_samples, roundtrip)
