"""`foleyflow bench distill` on tiny models: both tables land in BENCHMARKS.md; missing backbones stop it early."""

import json

import numpy as np
import pytest
import torch
from editor_tiny import tiny_editor

from foleyflow.evaluation.bootstrap import Estimate
from foleyflow.pipelines import distill_bench as db
from training_helpers import make_tta_teacher

SMALL = [2, 2, 4, 4, 4, 8]
TRAINER = {"max_steps": 1, "batch_size": 2, "val_every": 1, "val_batches": 1, "checkpoint_every": 1, "log_every": 1}


@pytest.fixture(scope="module")
def generators(tmp_path_factory):
    """A tiny teacher generator, one distillation round of it (4 -> 2 steps), tiny in-world backbones."""
    from foleyflow.evaluation.backbones.inworld import ClapModel, build_tagger, save_clap, save_tagger
    from foleyflow.interfaces.cli import main

    root = tmp_path_factory.mktemp("distill-bench")
    teacher, data, inputs = make_tta_teacher(root)
    (root / "distill.json").write_text(json.dumps({"recipe": "distill", "recipe_options": {"data": data}, **TRAINER}))
    assert main(["distill", "tta", "--teacher", str(teacher), "--rounds", "1", "--start-steps", "4", "--config", str(root / "distill.json"), "--out", str(root / "bsa")]) == 0
    save_tagger(root / "tagger", build_tagger(["tone", "noise"], SMALL).eval(), ["tone", "noise"])
    save_clap(root / "clap", ClapModel(embed_dim=8, channels=SMALL))
    return root, teacher, inputs["train_manifest"]


def test_generator_table_has_teacher_and_student_rows_with_intervals_over_runs(generators, tmp_path, cli):
    root, teacher, manifest = generators
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\n## Codec\n\nearlier figures\n")
    args = ["bench", "distill", "--teacher", str(teacher), "--student", f"bsa={root / 'bsa'}", "--teacher-steps", "4,2", "--student-steps", "2,1",
            "--n", "3", "--runs", "2", "--manifest", manifest, "--backbone", f"tagger:{root / 'tagger'}", "--backbone", f"clap:{root / 'clap'}",
            "--work", str(tmp_path / "work"), "--benchmarks", str(benchmarks)]
    code, out, err = cli(*args)
    assert code == 0, err
    text = benchmarks.read_text()
    assert text.startswith("# Benchmarks\n\n## Codec\n\nearlier figures\n") and "\n## Distillation\n" in text
    for row in ("| teacher | - | 4 |", "| teacher | - | 2 |", "| student | bsa | 2 |"):
        assert row in text
    assert "no bsa student at 1 steps" in text and "--backbone tagger:" in text
    assert len(list((tmp_path / "work" / "student-bsa-2" / "run-1").glob("*.wav"))) == 3
    line = next(line for line in text.splitlines() if line.startswith("| student | bsa | 2 |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert len(cells) == 3 + 5 and all("[" in cell for cell in cells[3:])  # FD FAD KL CLAP time, each with its CI
    # Measuring again replaces the block instead of adding a second one.
    assert cli(*args)[0] == 0 and benchmarks.read_text().count("<!-- distill:generator -->") == 1


def test_without_the_inworld_backbones_the_bench_stops_in_one_line(generators, tmp_path, cli, monkeypatch):
    import foleyflow.models.checkpoint as checkpoint

    root, teacher, _ = generators
    monkeypatch.setattr(checkpoint, "PRETRAINED_ROOT", tmp_path / "nothing-shipped")
    code, out, err = cli("bench", "distill", "--teacher", str(teacher), "--student", f"bsa={root / 'bsa'}", "--benchmarks", str(tmp_path / "B.md"))
    assert code == 2 and "tagger and clap" in err and "--backbone" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "B.md").exists()


def test_editor_table_compares_teacher_step_counts_with_the_students(tmp_path, cli, monkeypatch):
    import foleyflow.pipelines.edit_bench as edit_bench

    torch.manual_seed(0)
    tiny_editor(steps=4).save_pretrained(tmp_path / "teacher")
    (tmp_path / "edit.json").write_text(json.dumps({"recipe": "distill-edit", "recipe_options": {"data": {"factory": "editor_tiny:TinyTriplets"}}, **TRAINER}))
    code, _, err = cli("distill", "edit", "--teacher", str(tmp_path / "teacher"), "--target-steps", "1", "--teacher-steps", "4", "--config", str(tmp_path / "edit.json"), "--out", str(tmp_path / "students"))
    assert code == 0, err
    rng = np.random.default_rng(0)
    items = [{"task": task, "source": (0.1 * rng.standard_normal(1024)).astype(np.float32), "instruction": f"{task} it"} for task in ("add", "remove", "replace")]
    for item in items:
        item["target"] = item["source"] * 0.5
    monkeypatch.setattr(edit_bench, "test_triplets", lambda split, count, seed, root, *tasks: items)
    code, out, err = cli("bench", "distill", "--edit-teacher", str(tmp_path / "teacher"), "--edit-student", str(tmp_path / "students"),
                         "--edit-teacher-steps", "4,2", "--edit-student-steps", "2,1", "--edit-n", "3", "--benchmarks", str(tmp_path / "B.md"))
    assert code == 0, err
    text = (tmp_path / "B.md").read_text()
    for method in ("teacher @ 4", "teacher @ 2", "student @ 2", "student @ 1"):
        assert f"| add | 1 | {method} |" in text
    assert "<!-- distill:editor -->" in text and "<!-- distill:generator -->" not in text
    assert "--edit-n 3 --seed 0`" in text and "--runs" not in text  # only the editor table's settings
    assert "t_start  for" not in text and "Editor student at 2 steps vs teacher at" not in text  # no 200-step teacher row here


def _gap_report(**gaps_by_method) -> dict:
    """A bench report in compare_editors' shape: per task, each method's gap closed."""
    tasks = ("add", "remove", "replace")
    return {"tasks": {task: {"methods": {method: {"gap_closed": {"value": gaps[index]}} for method, gaps in gaps_by_method.items()}}
                      for index, task in enumerate(tasks)}}


def test_the_editor_verdict_handles_a_teacher_that_does_not_close_the_gap():
    student, teacher = "student @ 8", "teacher @ 200"
    within = _gap_report(**{student: (0.30, 0.40, 0.47), teacher: (0.40, 0.40, 0.40)})  # means 0.39 vs 0.40
    assert db.mean_gap_closed(within, student) == pytest.approx(0.39)
    assert "within 5%: ship it" in db.editor_verdict(within)[0]
    missing = _gap_report(**{student: (0.36, 0.36, 0.36), teacher: (0.40, 0.40, 0.40)})
    assert "misses the 5% bar by 5.0%" in db.editor_verdict(missing)[0]
    negative = db.editor_verdict(_gap_report(**{student: (-0.17, -0.17, -0.17), teacher: (-0.15, -0.15, -0.15)}))[0]
    assert "-0.170 vs -0.150" in negative and "-0.020 absolute" in negative and "does not apply" in negative and "keep the teacher" in negative
    assert db.editor_verdict(_gap_report(**{teacher: (0.4, 0.4, 0.4)})) == []  # no student row: no verdict

def _report(fd):
    rows = [{"row": db.Row(model, weighting, steps, "x"), "figures": {"FD": Estimate(value, value, value)}} for (model, weighting, steps), value in fd.items()]
    return {"rows": rows}


def test_the_closing_note_says_whether_bsa_won_and_whether_it_ships():
    report = _report({("teacher", "", 200): 20.0, ("student", "bsa", 25): 20.5, ("student", "min-snr", 25): 21.0, ("student", "bsa", 50): 30.0})
    note = " ".join(db.generator_verdict(report))
    assert "BSA beat the other weightings" in note and "bsa 20.500, min-snr 21.000" in note and "+2.5%" in note and "ship it" in note
    worse = " ".join(db.generator_verdict(_report({("teacher", "", 200): 20.0, ("student", "bsa", 25): 22.0, ("student", "none", 25): 21.0})))
    assert "did not beat" in worse and "misses the 5% bar by 5.0%" in worse


def test_across_runs_is_a_student_t_interval():
    estimate = db.across_runs([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776445105 * np.std([1, 2, 3, 4, 5], ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert estimate.value == 3.0 and estimate.low == pytest.approx(3 - half) and estimate.high == pytest.approx(3 + half)
    assert db.across_runs([2.0]) == Estimate(2.0, 2.0, 2.0)
