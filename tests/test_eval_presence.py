"""Class presence (evaluation/presence.py): windows, the max over them, unknown classes, and the
`bench edit` rows it adds, with the perfect-sampler reference row."""

import math

import numpy as np
import pytest
import torch
from editor_tiny import tiny_editor

from foleyflow.evaluation.presence import HOP_SAMPLES, WINDOW_SAMPLES, ClassPresence, edited_classes, presence_windows
from foleyflow.pipelines.edit_bench import PERFECT_SAMPLER, SOURCE_ITSELF, format_table, run_edit_bench, shifted


class LoudnessTagger(torch.nn.Module):
    """A stand-in tagger: class "loud" scores a window's RMS, class "quiet" its negative."""

    def forward(self, audio: torch.Tensor) -> dict:
        rms = audio.pow(2).mean(dim=1).sqrt()
        return {"logits": torch.stack([40 * rms - 4, 4 - 40 * rms], dim=1)}


def _presence() -> ClassPresence:
    return ClassPresence(LoudnessTagger(), ["loud", "quiet"])


def test_windows_cover_the_clip_at_half_a_window_stride():
    audio = np.arange(3 * WINDOW_SAMPLES + 100, dtype=np.float32)
    windows = presence_windows(audio)
    starts = windows[:, 0].long().tolist()
    assert windows.shape[1] == WINDOW_SAMPLES and starts[:3] == [0, HOP_SAMPLES, 2 * HOP_SAMPLES]
    assert starts[-1] == audio.size - WINDOW_SAMPLES  # the clip's end is in a window
    short = presence_windows(np.ones(100, np.float32))
    assert short.shape == (1, WINDOW_SAMPLES) and float(short.sum()) == 100.0  # zero-padded to one window


def test_presence_is_the_most_confident_window():
    audio = np.zeros(5 * WINDOW_SAMPLES, np.float32)
    audio[2 * WINDOW_SAMPLES : 3 * WINDOW_SAMPLES] = 0.2  # one loud window's worth, aligned with window 4
    loud, quiet, unknown, none = _presence()(audio, ["loud", "quiet", "bird", None])
    assert loud == pytest.approx(1 / (1 + math.exp(-(40 * 0.2 - 4))), rel=1e-5)
    assert quiet == pytest.approx(1 / (1 + math.exp(-4)), rel=1e-5)  # a silent window elsewhere
    assert math.isnan(unknown) and math.isnan(none)
    assert all(math.isnan(p) for p in _presence()(audio, [None, "bird"]))


def test_edited_classes_follow_the_task():
    assert edited_classes({"task": "add", "edit_labels": ["dog"]}) == (None, "dog")
    assert edited_classes({"task": "remove", "edit_labels": ["dog"]}) == ("dog", None)
    assert edited_classes({"task": "replace", "edit_labels": ["dog", "bell"]}) == ("dog", "bell")
    assert edited_classes({"task": "add"}) == (None, None)


def _items() -> list[dict]:
    """Quiet noise; an add of a loud tone (with a perfect-sampler output, one without), a remove of it."""
    rng = np.random.default_rng(0)
    n = 4 * WINDOW_SAMPLES
    tone = np.zeros(n, np.float32)
    tone[:WINDOW_SAMPLES] = 0.3 * np.sin(np.arange(WINDOW_SAMPLES) * 0.3)
    items = []
    for k in range(2):
        base = (0.001 * rng.standard_normal(n)).astype(np.float32)
        added = base + shifted(tone, WINDOW_SAMPLES, n)
        add = {"task": "add", "source": base, "target": added, "instruction": "Add a tone", "edit_labels": ["loud"],
               "event_audio": tone, "event_onset": WINDOW_SAMPLES, "edit_spans": [[WINDOW_SAMPLES, 2 * WINDOW_SAMPLES]],
               "triplet_id": f"add-{k}"}
        if k == 0:
            add["perfect_sampler_audio"] = base + shifted(0.5 * tone, WINDOW_SAMPLES, n)
        items.append(add)
        items.append({"task": "remove", "source": added, "target": base, "instruction": "Remove the tone", "edit_labels": ["loud"],
                      "edit_spans": [[WINDOW_SAMPLES, 2 * WINDOW_SAMPLES]], "triplet_id": f"remove-{k}"})
    return items


def test_bench_reports_presence_and_the_perfect_sampler_row():
    report = run_edit_bench(tiny_editor(), _items(), steps=1, t_starts=(), methods=("oracle",), composites=("end",),
                            resamples=20, presence=_presence())
    add, remove = report["tasks"]["add"], report["tasks"]["remove"]
    # the true edit raises the added class's presence and lowers the removed one's, on every triplet
    assert add["target_presence_new"]["value"] > 0.5 and add["target_presence_new"]["raised"] == 1.0
    assert remove["target_presence_old"]["value"] < -0.5 and remove["target_presence_old"]["lowered"] == 1.0
    assert "target_presence_old" not in add and "target_presence_new" not in remove
    # the reference row: add only, over the one triplet that has it
    assert PERFECT_SAMPLER in add["methods"] and PERFECT_SAMPLER not in remove["methods"]
    sampler = add["methods"][PERFECT_SAMPLER]
    assert sampler["n"] == 1 and sampler["nfe"] == 0 and sampler["presence_new"]["n"] == 1 and sampler["presence_new"]["value"] > 0
    assert "presence_new" not in add["methods"][SOURCE_ITSELF]  # the source minus itself says nothing
    assert "presence_old" in remove["methods"]["oracle + end"]
    table = format_table(report)
    assert "| add | 2 | true target | +" in table and f"| add | 1 | {PERFECT_SAMPLER} |" in table


def test_bench_without_a_tagger_has_no_presence_table():
    report = run_edit_bench(tiny_editor(), _items(), steps=1, t_starts=(), methods=("oracle",), composites=("end",), resamples=20)
    assert "target_presence_new" not in report["tasks"]["add"] and "Class presence" not in format_table(report)


def test_pairing_a_reference_row_counts_only_the_triplets_it_has():
    from foleyflow.pipelines.edit_bench import pair_rows

    items = [item for item in _items() if item["task"] == "add"]
    report = run_edit_bench(tiny_editor(), items, steps=1, t_starts=(), methods=("oracle",), composites=("end",),
                            resamples=20, per_triplet=True)
    assert np.isnan(report["tasks"]["add"]["methods"][PERFECT_SAMPLER]["per_triplet_l1"][1])
    paired = pair_rows(report, PERFECT_SAMPLER, report, SOURCE_ITSELF, resamples=20)["add"]
    assert paired["n"] == 1 and np.isfinite(paired["difference"]["value"])
