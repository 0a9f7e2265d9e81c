"""The editing benchmark harness: gap-closed arithmetic, per-task rows, timing figures, table."""

import numpy as np
import pytest
from editor_tiny import tiny_editor

from foleyflow.pipelines.edit_bench import SOURCE_ITSELF, format_table, gap_closed, log_mel_l1, run_edit_bench


def test_gap_closed_at_known_points():
    identity, floor = np.array([3.0, 5.0]), np.array([1.0, 1.0])
    assert gap_closed(identity, floor, identity) == 0.0
    assert gap_closed(identity, floor, floor) == 1.0
    assert gap_closed(identity, floor, np.array([2.0, 4.0])) == pytest.approx(1 / 3)
    assert gap_closed(identity, floor, np.array([5.0, 7.0])) == pytest.approx(-2 / 3)
    assert np.isnan(gap_closed(floor, floor, floor))


def test_log_mel_l1_is_zero_for_the_same_clip_and_positive_otherwise():
    audio = 0.1 * np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    assert log_mel_l1(audio, audio) == 0.0 and log_mel_l1(audio, 0.5 * audio) == pytest.approx(np.log(2), abs=1e-3)


def test_bench_reports_each_task_and_method_with_intervals():
    pytest.importorskip("foleyflow.evaluation.bootstrap")  # the eval branch's bootstrap intervals
    rng = np.random.default_rng(0)
    triplets = []
    for task in ("add", "remove", "replace"):
        for _ in range(2):
            source = (0.1 * rng.standard_normal(1024)).astype(np.float32)
            triplets.append({"task": task, "source": source, "target": source * 0.3, "instruction": f"{task} it"})
    editor = tiny_editor()
    report = run_edit_bench(editor, triplets, baseline=tiny_editor("ddpm"), steps=2, t_starts=(0.0, 0.1), resamples=20)
    assert set(report["tasks"]) == {"add", "remove", "replace"}
    row = report["tasks"]["add"]
    assert row["n"] == 2 and set(row["methods"]) == {SOURCE_ITSELF, "flow t_start=0", "flow t_start=0.1", "ddpm (same NFE)"}
    for name, method in row["methods"].items():
        if name == SOURCE_ITSELF:
            continue
        assert method["nfe"] == 2 and method["forward_seconds"] > 0 and method["overhead"] > 0
        assert method["gap_closed"]["ci95_low"] <= method["gap_closed"]["value"] <= method["gap_closed"]["ci95_high"]
    assert row["floor_l1"]["value"] == pytest.approx(0.0, abs=1e-4)  # the test codec is exact
    assert "| add | 2 | flow t_start=0.1 |" in format_table(report)


def test_bench_guides_at_the_scale_it_is_given_without_touching_the_callers_editor():
    rng = np.random.default_rng(0)
    source = (0.1 * rng.standard_normal(1024)).astype(np.float32)
    triplets = [{"task": "add", "source": source, "target": source * 0.3, "instruction": "add it"}]
    editor = tiny_editor()
    own = editor.config.cfg_scale
    runs = {cfg: run_edit_bench(editor, triplets, steps=2, t_starts=(0.0,), resamples=20, cfg_scale=cfg, per_triplet=True)
            for cfg in (None, 4.0)}
    assert editor.config.cfg_scale == own and runs[None]["cfg_scale"] == own and runs[4.0]["cfg_scale"] == 4.0
    l1 = {cfg: run["tasks"]["add"]["methods"]["flow t_start=0"]["per_triplet_l1"][0] for cfg, run in runs.items()}
    assert l1[None] != l1[4.0]  # the guidance reached the sampler (same noise: the triplet's seed)
    assert "steps 2, guidance 4," in format_table(runs[4.0])
