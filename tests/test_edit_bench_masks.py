"""`bench edit` with edit masks: best-aligned add scoring, mask x compositing rows with the oracle, BENCHMARKS.md sections."""

import numpy as np
import pytest
import torch
from editor_tiny import tiny_editor

from foleyflow.benchmarks import write_section
from foleyflow.errors import InputError
from foleyflow.pipelines.edit_bench import (
    ALIGNED_SCORING, SOURCE_ITSELF, ItemScorer, add_onsets, format_table, log_mel_l1, region_move, run_edit_bench, shifted, triplet_seed,
)


def _add_item(onset: int = 3200, samples: int = 16000) -> dict:
    rng = np.random.default_rng(0)
    source = (0.05 * rng.standard_normal(samples)).astype(np.float32)
    event = np.zeros(samples, np.float32)
    event[:3200] = 0.5 * np.sin(np.arange(3200) * 0.2)  # a 0.2 s tone, placed at onset 0
    target = source + shifted(event, onset, samples)
    return {"task": "add", "source": source, "target": target, "instruction": "Add a tone", "event_audio": event,
            "event_onset": onset, "edit_spans": [[onset, onset + 3200]]}


def test_add_onsets_are_a_grid_through_the_true_onset():
    assert add_onsets(3250, 8000, 1600).tolist() == [50, 1650, 3250, 4850, 6450]
    # a 3000-sample event must stay inside the clip: no onset after 5000, except the true one
    assert add_onsets(3250, 8000, 1600, event_samples=3000).tolist() == [50, 1650, 3250, 4850]
    assert add_onsets(7000, 8000, 1600, event_samples=3000).tolist() == [600, 2200, 3800, 5400, 7000]


def test_best_aligned_scoring_picks_the_known_shift():
    item = _add_item()
    scorer = ItemScorer(tiny_editor(), item)
    output = item["source"] + shifted(item["event_audio"], 3200 + 3 * 1600, 16000)  # the tone 0.3 s late
    l1, identity, floor, shift = scorer.score(output)
    assert shift == 3 * 1600 and l1 == pytest.approx(0.0, abs=1e-5) and floor == pytest.approx(0.0, abs=1e-3)
    # identity against the same aligned target (the tiny codec is exact: the source itself)
    assert identity == pytest.approx(log_mel_l1(item["source"], output), abs=1e-4) and identity > 0.01
    assert scorer.score(item["target"])[3] == 0  # the true target aligns with itself


def test_replace_is_scored_with_its_new_event_aligned_on_the_bare_scene():
    rng = np.random.default_rng(2)
    base = (0.05 * rng.standard_normal(16000)).astype(np.float32)
    old, new = np.zeros(16000, np.float32), np.zeros(16000, np.float32)
    old[:3200] = 0.5 * np.sign(np.sin(np.arange(3200) * 0.05))  # a square wave at onset 0, then placed at 1600
    new[:3200] = 0.5 * np.sin(np.arange(3200) * 0.2)
    source, target = base + shifted(old, 1600, 16000), base + shifted(new, 8000, 16000)
    item = {"task": "replace", "source": source, "target": target, "instruction": "Replace the buzz with a tone",
            "event_audio": new, "event_onset": 8000, "base_audio": base, "edit_spans": [[1600, 4800], [8000, 11200]]}
    scorer = ItemScorer(tiny_editor(), item)
    where_the_old_was = base + shifted(new, 1600, 16000)  # the tone put where the buzz was: a right edit
    l1, identity, _, shift = scorer.score(where_the_old_was)
    assert shift == 1600 - 8000 and l1 == pytest.approx(0.0, abs=1e-5)
    assert identity == pytest.approx(log_mel_l1(source, where_the_old_was), abs=1e-4) and identity > 0.01
    # scored against the data set's target (no new event carried), the same output is far from it
    true = ItemScorer(tiny_editor(), {key: value for key, value in item.items() if key not in ("event_audio", "base_audio")})
    assert not true.aligned and true.score(where_the_old_was)[0] > 0.01 and true.score(where_the_old_was)[3] == 0
    assert scorer.score_and_true_target(where_the_old_was)[1] == pytest.approx(true.score(where_the_old_was)[0])
    # the report says how replace was scored and keeps the data set's target's figure beside it
    report = run_edit_bench(tiny_editor(steps=2), [item], t_starts=(0.01,), resamples=10, methods=("none",), composites=())
    assert report["replace_scoring"].startswith("best-aligned") and "add_scoring" not in report  # no add in this run
    row = report["tasks"]["replace"]["methods"]["flow t_start=0.01"]
    assert row["vs_unedited_true_target"]["value"] != pytest.approx(row["vs_unedited"]["value"])
    assert "per_triplet_true_target_l1" not in row  # only with per_triplet
    paired = run_edit_bench(tiny_editor(steps=2), [item], t_starts=(0.01,), resamples=10, methods=("none",), composites=(), per_triplet=True)
    rows = paired["tasks"]["replace"]["methods"]
    own_target = np.subtract(rows["flow t_start=0.01"]["per_triplet_true_target_l1"], rows[SOURCE_ITSELF]["per_triplet_true_target_l1"])
    assert own_target.mean() == pytest.approx(row["vs_unedited_true_target"]["value"])
    assert rows[SOURCE_ITSELF]["per_triplet_true_target_l1"][0] == pytest.approx(true.score(source)[0])
    assert "best-aligned" in format_table(report).split("**replace** against the")[1][:20]


def test_pairing_refuses_reports_scored_differently():
    from foleyflow.pipelines.edit_bench import pair_rows

    rows = {"n": 1, "triplet_ids": ["a"], "methods": {"m": {"per_triplet_l1": [0.1]}}}
    aligned = {"replace_scoring": "best-aligned", "tasks": {"replace": rows}}
    assert pair_rows(aligned, "m", aligned, "m", resamples=10)["replace"]["difference"]["value"] == 0.0
    with pytest.raises(InputError, match="score replace differently"):
        pair_rows(aligned, "m", {"tasks": {"replace": rows}}, "m", resamples=10)
    # Only the paired tasks' scoring matters: a replace-only run pairs with a full one.
    full = {"add_scoring": "best-aligned", "replace_scoring": "best-aligned", "tasks": {"add": rows, "replace": rows}}
    assert set(pair_rows(aligned, "m", full, "m", resamples=10)) == {"replace"}
    with pytest.raises(InputError, match="score add differently"):
        pair_rows(full, "m", aligned, "m", resamples=10)


def quieted_items(seed: int, samples: int, quiet: tuple[int, int], factor: float, span: list[int], noun: str) -> list[dict]:
    """A remove and a replace item: noise whose target is ``factor`` times quieter over ``quiet``, the
    edit span ``span``, instructions "<task> the <noun>"."""
    rng = np.random.default_rng(seed)
    items = []
    for task in ("remove", "replace"):
        source = (0.1 * rng.standard_normal(samples)).astype(np.float32)
        target = source.copy()
        target[quiet[0] : quiet[1]] *= factor
        items.append({"task": task, "source": source, "target": target, "instruction": f"{task} the {noun}", "edit_spans": [span]})
    return items


def test_mask_rows_come_with_the_oracle_beside_them():
    pytest.importorskip("foleyflow.evaluation.bootstrap")
    items = quieted_items(1, 2048, (600, 1200), 0.2, [600, 1200], "bell")
    report = run_edit_bench(tiny_editor(steps=2), items, t_starts=(0.01,), resamples=10,
                            methods=("none", "diffedit", "oracle"), composites=("end", "every-step+audio"))
    names = list(report["tasks"]["remove"]["methods"])
    assert names == [SOURCE_ITSELF, "flow t_start=0.01", "diffedit + end", "oracle + end", "diffedit + every-step+audio", "oracle + every-step+audio"]
    row = report["tasks"]["replace"]["methods"]["oracle + every-step+audio"]
    assert row["nfe"] == 2 and row["gap_closed"]["ci95_low"] <= row["gap_closed"]["value"] <= row["gap_closed"]["ci95_high"]
    unedited = report["tasks"]["remove"]["methods"][SOURCE_ITSELF]
    assert unedited["nfe"] == 0 and unedited["l1"]["value"] == pytest.approx(np.mean([log_mel_l1(i["source"], i["target"]) for i in items if i["task"] == "remove"]))
    table = format_table(report)
    oracle_gap = report["tasks"]["remove"]["methods"]["oracle + end"]["gap_closed"]["value"]
    diffedit_line = next(line for line in table.splitlines() if "| remove | 1 | diffedit + end |" in line)
    assert f"{oracle_gap:.3f}" in diffedit_line.split("|")[7]  # the oracle's gap in its own column
    # paired against the unedited source, per triplet (one triplet per task here: the plain difference)
    versus = report["tasks"]["remove"]["methods"]["diffedit + end"]["vs_unedited"]["value"]
    assert versus == pytest.approx(report["tasks"]["remove"]["methods"]["diffedit + end"]["l1"]["value"] - unedited["l1"]["value"])
    assert f"{versus:.3f}" in diffedit_line.split("|")[6] and "vs_unedited" not in unedited
    # the edit's reach: the plain recipe may change everything, the unedited source nothing
    methods = report["tasks"]["remove"]["methods"]
    assert (methods["flow t_start=0.01"]["mask_share"], methods["flow t_start=0.01"]["empty_mask_fraction"]) == (1.0, 0.0)
    assert (unedited["mask_share"], unedited["empty_mask_fraction"]) == (0.0, 1.0)
    assert 0.0 < methods["oracle + end"]["mask_share"] < 1.0
    share = methods["diffedit + end"]
    assert f"{share['mask_share']:.2f} ({100 * share['empty_mask_fraction']:.0f}%)" == diffedit_line.split("|")[8].strip()
    # region move: the unedited source is 1 by definition; every latent row reports one, in its own column
    assert unedited["region_move"]["value"] == pytest.approx(1.0)
    moved = methods["oracle + end"]["region_move"]
    oracle_line = next(line for line in table.splitlines() if "| remove | 1 | oracle + end |" in line)
    assert moved["value"] > 0 and f"{moved['value']:.3f}" in oracle_line.split("|")[10]
    # mask IoU: the oracle's is 1 by construction, a mask row's lies in [0, 1], plain and unedited rows have none
    assert methods["oracle + end"]["mask_iou"]["value"] == pytest.approx(1.0) and f"{1.0:.3f}" in oracle_line.split("|")[9]
    assert 0.0 <= methods["diffedit + end"]["mask_iou"]["value"] <= 1.0
    assert "mask_iou" not in methods["flow t_start=0.01"] and "mask_iou" not in unedited


def test_ceiling_rows_put_the_true_target_inside_each_mask():
    """With the exact tiny codec, the oracle mask and the target's latent reproduce the target:
    the ceiling is far below no edit, while the UNet's own row (2 untrained steps) is not."""
    rng = np.random.default_rng(2)
    source = (0.1 * rng.standard_normal(4096)).astype(np.float32)
    target = source.copy()
    target[1500:2500] *= 0.05
    items = [{"task": "remove", "source": source, "target": target, "instruction": "remove the hiss", "edit_spans": [[1500, 2500]]}]
    report = run_edit_bench(tiny_editor(steps=2), items, t_starts=(), resamples=10, methods=("oracle",), composites=("end", "audio"), ceiling=True)
    methods = report["tasks"]["remove"]["methods"]
    assert list(methods) == [SOURCE_ITSELF, "oracle + end", "oracle + audio", "oracle + end, target latent (ceiling)", "oracle + audio, target latent (ceiling)"]
    unedited = methods[SOURCE_ITSELF]["l1"]["value"]
    for composite in ("end", "audio"):
        ceiling = methods[f"oracle + {composite}, target latent (ceiling)"]
        assert ceiling["l1"]["value"] < 0.2 * unedited and ceiling["nfe"] == 0
        assert ceiling["region_move"]["value"] == pytest.approx(0.0, abs=1e-6)  # the kept latent is the target's inside the region
        assert ceiling["l1"]["value"] < methods[f"oracle + {composite}"]["l1"]["value"]
    table = format_table(report)
    assert "| remove | 1 | oracle + audio, target latent (ceiling) |" in table
    with pytest.raises(InputError, match="ceiling rows need"):
        run_edit_bench(tiny_editor(steps=2), items, t_starts=(), methods=("oracle",), composites=("every-step",), ceiling=True)

def test_per_triplet_rows_pair_two_runs():
    """--per-triplet: each row's L1 per triplet, in the triplets' order, whose mean is the row's
    figure and whose difference from "no edit" is the vs-no-edit column's; ids name the triplets."""
    rng = np.random.default_rng(3)
    items = []
    for k in range(3):
        source = (0.1 * rng.standard_normal(4096)).astype(np.float32)
        target = source.copy()
        target[1000 + 200 * k : 2000 + 200 * k] *= 0.05
        items.append({"task": "remove", "triplet_id": f"t{k}", "source": source, "target": target,
                      "instruction": "remove the hiss", "edit_spans": [[1000 + 200 * k, 2000 + 200 * k]]})
    report = run_edit_bench(tiny_editor(steps=2), items, t_starts=(), resamples=10, methods=("oracle",), composites=("audio",), per_triplet=True)
    task = report["tasks"]["remove"]
    assert task["triplet_ids"] == ["t0", "t1", "t2"]
    row, unedited = task["methods"]["oracle + audio"], task["methods"][SOURCE_ITSELF]
    assert len(row["per_triplet_l1"]) == 3 and np.mean(row["per_triplet_l1"]) == pytest.approx(row["l1"]["value"])
    difference = np.subtract(row["per_triplet_l1"], unedited["per_triplet_l1"])
    assert float(np.mean(difference)) == pytest.approx(row["vs_unedited"]["value"])
    plain = run_edit_bench(tiny_editor(steps=2), items[:1], t_starts=(), resamples=10, methods=("oracle",), composites=("audio",))
    assert "triplet_ids" not in plain["tasks"]["remove"] and "per_triplet_l1" not in plain["tasks"]["remove"]["methods"]["oracle + audio"]


def test_mask_iou_closed_forms():
    from foleyflow.pipelines.edit_bench import mask_iou

    reference = torch.tensor([0.0, 0.5, 1.0, 1.0, 0.25]).view(1, 1, 5, 1)  # frames 1-3 count (>= 0.5)
    assert mask_iou(reference, reference) == 1.0
    assert mask_iou(torch.tensor([0.0, 0.0, 0.9, 0.0, 0.0]).view(1, 1, 5, 1), reference) == pytest.approx(1 / 3)
    assert mask_iou(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0]).view(1, 1, 5, 1), reference) == 0.0
    assert mask_iou(torch.zeros(1, 1, 5, 1), torch.zeros(1, 1, 5, 1)) == 1.0  # both empty


def test_region_move_closed_forms():
    source, target = torch.zeros(1, 2, 4, 3), torch.zeros(1, 2, 4, 3)
    target[:, :, 1:3] = 2.0  # the edit changes frames 1-2
    region = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 4, 1)
    assert region_move(source, source, target, region) == 1.0
    assert region_move(target, source, target, region) == 0.0
    assert region_move(0.5 * target, source, target, region) == pytest.approx(0.5)
    assert region_move(-target, source, target, region) == pytest.approx(2.0)  # the wrong way: further than the source
    outside = target.clone()
    outside[:, :, 0] = 9.0  # what happens outside the region does not count
    assert region_move(outside, source, target, region) == 0.0
    assert np.isnan(region_move(target, source, source, region))  # no change to measure against


def test_write_section_replaces_only_its_own_section(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nintro\n\n## Codec\n\ncodec rows\n\n## Editor benchmark (x)\n\nold rows\n\n## Later\n\nkept\n")
    write_section(path, "Editor benchmark (x)", "new rows")
    write_section(path, "Editor benchmark (y)", "other rows")
    text = path.read_text()
    assert "old rows" not in text and "new rows" in text and "codec rows" in text and "kept" in text
    assert text.index("## Later") < text.index("## Editor benchmark (y)") and text.count("## Editor benchmark (x)") == 1


def test_cli_bench_runs_a_part_and_writes_its_section(cli, monkeypatch, tmp_path):
    import foleyflow.pipelines.edit_bench as edit_bench

    folder = tmp_path / "model"
    tiny_editor().save_pretrained(folder)
    rng = np.random.default_rng(0)
    items = [{"task": task, "source": (0.1 * rng.standard_normal(1024)).astype(np.float32), "instruction": f"{task} it"} for task in ("add", "remove", "replace")]
    for item in items:
        item["target"] = item["source"] * 0.5
    monkeypatch.setattr(edit_bench, "test_triplets", lambda split, count, seed, root, *tasks: items)
    out = tmp_path / "BENCHMARKS.md"
    code, stdout, err = cli("bench", "edit", "--n", "3", "--model", str(folder), "--steps", "1", "--t-starts", "",
                            "--methods", "oracle", "--composite", "end", "--out", str(out))
    assert code == 0, err
    assert "| add | 1 | oracle + end |" in stdout and f"## Editor benchmark (model {folder}; methods oracle; composite end" in out.read_text()
    code, stdout, err = cli("bench", "edit", "--n", "3", "--model", str(folder), "--steps", "1", "--t-starts", "",
                            "--methods", "oracle", "--composite", "end", "--ceiling", "--out", str(out))
    assert code == 0, err
    assert "| remove | 1 | oracle + end, target latent (ceiling) |" in stdout and "composite end; t_starts none; n 3; ceiling)" in out.read_text()
    code, _, err = cli("bench", "edit", "--model", str(folder), "--methods", "magic")
    assert code == 2 and "mask must be one of" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("bench", "edit", "--model", str(folder), "--n", "3", "--methods", "oracle", "--composite", "every-step", "--ceiling")
    assert code == 2 and "ceiling rows need" in err and len(err.strip().splitlines()) == 1


def test_region_rows_mark_the_true_span():
    """The region row is what a user marking the event's time would get: the span itself, so it
    covers at least the oracle's frames (the span's frames that really change)."""
    rng = np.random.default_rng(4)
    source = (0.1 * rng.standard_normal(4096)).astype(np.float32)
    target = source.copy()
    target[1500:2500] *= 0.05
    items = [{"task": "remove", "source": source, "target": target, "instruction": "remove the hiss", "edit_spans": [[1200, 2800]]}]
    report = run_edit_bench(tiny_editor(steps=2, t_start=0.5), items, t_starts=(), resamples=10, methods=("region", "oracle"), composites=("audio", "every-step+audio"))
    assert report["t_start"] == 0.5 and report["region_t_start"] == 0.01  # region rows are sampled as the editor samples a region
    assert "t_start 0.5 for the mask rows (0.01 for the region rows)" in format_table(report)
    methods = report["tasks"]["remove"]["methods"]
    for composite in ("audio", "every-step+audio"):
        region, oracle = methods[f"region + {composite}"], methods[f"oracle + {composite}"]
        assert region["mask_share"] > oracle["mask_share"] > 0
        assert 0 < region["mask_iou"]["value"] < 1 and oracle["mask_iou"]["value"] == 1.0


def _report(ids, rows):
    return {"tasks": {"add": {"triplet_ids": ids, "methods": {name: {"per_triplet_l1": values} for name, values in rows.items()}}}}


def test_pair_rows_closed_form_and_errors():
    from foleyflow.pipelines.edit_bench import pair_rows

    a = _report(["t1", "t2", "t3", "t4"], {"x": [1.0, 2.0, 3.0, 4.0], "y": [1.5, 1.5, 3.5, 3.5]})
    paired = pair_rows(a, "x", a, "y", resamples=100)["add"]
    assert paired["n"] == 4 and paired["difference"]["value"] == 0.0 and paired["share_lower"] == 0.5
    assert pair_rows(a, "x", a, "y", resamples=100, true_target=True)["add"] == paired  # scored on the true target: no second figure
    aligned = {**a, "add_scoring": ALIGNED_SCORING}
    with pytest.raises(InputError, match="rerun it"):  # an aligned report from before the second figure was kept
        pair_rows(aligned, "x", aligned, "y", resamples=100, true_target=True)
    shifted = _report(["t1", "t2", "t3", "t4"], {"x": [0.9, 1.9, 2.9, 3.9]})
    exact = pair_rows(shifted, "x", a, "x", resamples=100)["add"]["difference"]
    assert exact["value"] == pytest.approx(-0.1) and exact["ci95_low"] == pytest.approx(-0.1) and exact["ci95_high"] == pytest.approx(-0.1)
    for other, row, message in [(_report(["t1", "t2", "t4", "t3"], {"x": [0, 0, 0, 0]}), "x", "different add triplets"),
                                (a, "z", "no row 'z'"), ({"tasks": {}}, "x", "no add triplets"),
                                ({"tasks": {"add": {"methods": {}}}}, "x", "--per-triplet")]:
        with pytest.raises(InputError, match=message):
            pair_rows(a, "x", other, row)


def test_cli_bench_pair(cli, tmp_path):
    import json

    path = tmp_path / "a.json"
    path.write_text(json.dumps(_report(["t1", "t2"], {"x": [1.0, 2.0], "y": [2.0, 4.0]})))
    code, out, err = cli("bench", "pair", str(path), "x", str(path), "y")
    assert code == 0, err
    assert out.strip() == "add: n 2, x minus y: -1.500 [-2.000, -1.000], lower on 100% of triplets"
    code, out, _ = cli("bench", "pair", str(path), "x", str(path), "--json")
    assert code == 0 and json.loads(out)["add"]["difference"]["value"] == 0.0
    # --true-target pairs an aligned task's second figure (its L1 to the data set's own target)
    report = _report(["t1", "t2"], {"x": [1.0, 2.0], "y": [2.0, 4.0]}) | {"add_scoring": ALIGNED_SCORING}
    report["tasks"]["add"]["methods"]["x"]["per_triplet_true_target_l1"] = [5.0, 5.0]
    report["tasks"]["add"]["methods"]["y"]["per_triplet_true_target_l1"] = [1.0, 3.0]
    path.write_text(json.dumps(report))
    code, out, err = cli("bench", "pair", str(path), "x", str(path), "y", "--true-target")
    assert code == 0, err
    assert out.strip() == "add: n 2, x minus y: +3.000 [+2.000, +4.000], lower on 0% of triplets"
    (tmp_path / "bad.json").write_text("{")
    code, _, err = cli("bench", "pair", str(tmp_path / "bad.json"), "x", str(path))
    assert code == 2 and "not a bench edit JSON report" in err and len(err.strip().splitlines()) == 1


def test_a_triplet_draws_the_same_noise_in_a_subset_run():
    """Noise follows the triplet's id, not its place in the run: a triplet scored alone gets the L1
    it gets in a longer run (the pairing of a one-task run with a full one relies on it)."""
    rng = np.random.default_rng(5)
    items = []
    for k in range(2):
        source = (0.1 * rng.standard_normal(4096)).astype(np.float32)
        items.append({"task": "remove", "triplet_id": f"t{k}", "source": source, "target": source * 0.5,
                      "instruction": "remove the hiss"})
    bench = lambda chosen: run_edit_bench(tiny_editor(steps=2), chosen, t_starts=(0.0,), resamples=10, methods=("none",), per_triplet=True)  # noqa: E731
    full, alone = bench(items), bench(items[1:])
    row = "flow t_start=0"
    assert alone["tasks"]["remove"]["methods"][row]["per_triplet_l1"][0] == full["tasks"]["remove"]["methods"][row]["per_triplet_l1"][1]
    assert full["tasks"]["remove"]["methods"][row]["per_triplet_l1"][0] != full["tasks"]["remove"]["methods"][row]["per_triplet_l1"][1]
    assert len({triplet_seed(0, "t0"), triplet_seed(0, "t1"), triplet_seed(1, "t0")}) == 3
