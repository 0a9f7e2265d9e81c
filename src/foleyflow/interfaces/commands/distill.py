"""`foleyflow distill tta|edit`: progressive distillation into fewer sampling steps, K rounds on the shared trainer."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from foleyflow.benchmarks import machine_description
from foleyflow.errors import InputError
from foleyflow.interfaces.cli import bench, distill

WEIGHTINGS = ("bsa", "salimans-max", "salimans-plus1", "min-snr", "none")


def _common(function):
    options = [
        click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder: round-K/ runs and models, distillation.json."),
        click.option("--steps-per-round", type=click.IntRange(min=1), default=None, help="Optimizer steps per round (overrides the config's max_steps)."),
        click.option("--guidance", type=click.FloatRange(min=0), default=None, help="CFG scale inside the first teacher's steps [default: the teacher's own]."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="JSON trainer config to start from [default: built in, see docs/distillation.md]."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, dotted for nested keys (repeatable)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def base_config(default: dict[str, Any], recipe: str, config_path: str | None, overrides: tuple[str, ...], steps_per_round: int | None) -> dict[str, Any]:
    """The trainer config every round starts from: built-in or --config, then --set and --steps-per-round."""
    from foleyflow.interfaces.commands.train import _parse_override
    from foleyflow.training.config import _set_dotted, load_train_config

    config = load_train_config(config_path).to_dict() if config_path else json.loads(json.dumps(default))
    if config["recipe"] != recipe:
        raise InputError(f"{config_path}: a {config['recipe']!r} config; `foleyflow distill` needs a {recipe!r} one")
    for text in overrides:
        _set_dotted(config, *_parse_override(text))
    if steps_per_round is not None:
        config["max_steps"] = steps_per_round
    return config


def _report_round(entry: dict[str, Any]) -> None:
    click.echo(f"round {entry['round']}: {entry['teacher_steps']} -> {entry['student_steps']} steps, {entry['optimizer_steps']} optimizer steps -> {entry['model']}")


@distill.command("tta")
@click.option("--teacher", required=True, help='Generator to distil: "default" or a generator folder.')
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="K: halvings of the step count.")
@click.option("--start-steps", type=click.IntRange(min=2), default=None, help="The teacher's DDIM steps N [default: the teacher's own, 200 for Tango].")
@click.option("--weighting", type=click.Choice(WEIGHTINGS), default="bsa", show_default=True, help="Loss weight w(lambda_t) (seed 003, eqs. 7-10).")
@click.option("--gamma", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True, help="gamma of bsa and min-snr.")
@_common
def distill_tta(teacher, rounds, start_steps, weighting, gamma, out_dir, steps_per_round, guidance, config_path, overrides) -> None:
    """BSA progressive distillation of a text-to-audio generator: N -> N/2 per round (Algorithm 1 of seed 003)."""
    from foleyflow.diffusion.distill import progressive_rounds
    from foleyflow.generator import read_generator_config
    from foleyflow.training.config import expand_path
    from foleyflow.training.recipes.distill import DEFAULT_CONFIG, teacher_sampling
    from foleyflow.training.rounds import run_rounds

    _, teacher_config = read_generator_config(expand_path(teacher))
    sampling = teacher_sampling(teacher_config)
    start_steps = start_steps or int(sampling["steps"])
    guidance = float(sampling["cfg"]) if guidance is None else guidance
    base = base_config(DEFAULT_CONFIG, "distill", config_path, overrides, steps_per_round)
    base["recipe_options"] = {**base.get("recipe_options", {}), "weighting": weighting, "gamma": gamma}
    plan = progressive_rounds(start_steps, rounds, guidance)
    entries = run_rounds(base, teacher, plan, out_dir, lambda r: {"teacher_steps": r.teacher_steps, "guidance": r.teacher_guidance}, _report_round)
    click.echo(f"distilled {start_steps} -> {entries[-1]['student_steps']} DDIM steps ({weighting}); student: {entries[-1]['model']}")


def edit_start_steps(teacher_steps: int, target_steps: int) -> int:
    """The smallest target x 2^k (k >= 1) that is at least the teacher's own step count."""
    halvings = max(1, math.ceil(math.log2(max(teacher_steps, 2 * target_steps) / target_steps)))
    return target_steps * 2**halvings


@distill.command("edit")
@click.option("--teacher", required=True, help='Editor to distil: "default" or an editor folder (flow objective).')
@click.option("--target-steps", type=click.IntRange(min=1), default=8, show_default=True, help="Euler steps of the final student.")
@click.option("--teacher-steps", type=click.IntRange(min=2), default=None,
              help="Euler steps of the first teacher; target x 2^K [default: the smallest such count >= the teacher's own steps].")
@_common
def distill_edit(teacher, target_steps, teacher_steps, out_dir, steps_per_round, guidance, config_path, overrides) -> None:
    """Few-step editing: progressive halving of the editor's Euler steps on the edit path from t_start."""
    from foleyflow.diffusion.distill import progressive_rounds
    from foleyflow.models.checkpoint import load_config, resolve_model_dir
    from foleyflow.training.config import expand_path
    from foleyflow.training.recipes.distill_edit import DEFAULT_CONFIG
    from foleyflow.training.rounds import run_rounds

    teacher_config = load_config(resolve_model_dir(expand_path(teacher), "editor"))
    start = teacher_steps or edit_start_steps(int(teacher_config.get("steps", 25)), target_steps)
    ratio, remainder = divmod(start, target_steps)
    if remainder or ratio < 2 or ratio & (ratio - 1):
        raise InputError(f"--teacher-steps {start} must be --target-steps {target_steps} times a power of two (e.g. {edit_start_steps(start, target_steps)})")
    guidance = float(teacher_config.get("cfg_scale", 1.0)) if guidance is None else guidance
    base = base_config(DEFAULT_CONFIG, "distill-edit", config_path, overrides, steps_per_round)
    plan = progressive_rounds(start, int(math.log2(ratio)), guidance)
    entries = run_rounds(base, teacher, plan, out_dir, lambda r: {"teacher_steps": r.teacher_steps, "guidance": r.teacher_guidance}, _report_round)
    click.echo(f"distilled the editor {start} -> {entries[-1]['student_steps']} Euler steps; student: {entries[-1]['model']}")


@bench.command("distill")
@click.option("--teacher", default=None, help="Generator teacher (name or folder); with --student, measures the generator table.")
@click.option("--student", "students", multiple=True, metavar="WEIGHTING=DIR", help="A `distill tta --out` folder per weighting (repeatable).")
@click.option("--teacher-steps", default="200,100,50,25", show_default=True, help="DDIM steps of the teacher rows.")
@click.option("--student-steps", default="100,50,25", show_default=True, help="Step counts of the student rows (rounds that produced them).")
@click.option("--n", "count", type=click.IntRange(min=2), default=100, show_default=True, help="Test captions (N clips of the split in a seeded order spread over captions).")
@click.option("--runs", type=click.IntRange(min=1), default=5, show_default=True, help="Runs (seeds) per row; the CI is over runs.")
@click.option("--manifest", default="$FOLEYFLOW_HOME/corpus/clips.jsonl", show_default=True, help="Captioned clips: the prompts and the reference audio.")
@click.option("--split", default="test", show_default=True)
@click.option("--backbone", "backbones", multiple=True, default=("inworld",), show_default=True, help="Metric backbones, as for `foleyflow eval` (inworld | panns:PATH | vggish:PATH | tagger:DIR | clap:DIR | laion-clap:DIR).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Prompts per generation batch.")
@click.option("--edit-teacher", default=None, help="Editor teacher (name or folder); with --edit-student, measures the editor table.")
@click.option("--edit-student", default=None, type=click.Path(file_okay=False), help="The `distill edit --out` folder.")
@click.option("--edit-teacher-steps", default="200,50,25,8", show_default=True)
@click.option("--edit-student-steps", default="8,4", show_default=True)
@click.option("--edit-n", type=click.IntRange(min=3), default=300, show_default=True, help="Held-out triplets, balanced over tasks.")
@click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False), help="Editing set folder (default: the one `foleyflow data build` wrote).")
@click.option("--work", "work_dir", default=None, type=click.Path(file_okay=False), help="Where generated clips go [default: $FOLEYFLOW_HOME/bench/distill].")
@click.option("--benchmarks", "benchmarks_path", default="BENCHMARKS.md", show_default=True, type=click.Path(dir_okay=False), help="File to write the tables to.")
@click.option("--seed", type=int, default=0, show_default=True)
def bench_distill(teacher, students, teacher_steps, student_steps, count, runs, manifest, split, backbones, batch_size,
                  edit_teacher, edit_student, edit_teacher_steps, edit_student_steps, edit_n, data_dir, work_dir, benchmarks_path, seed) -> None:
    """Distilled students vs their teachers (seed 003's Table 1, and the editor's few-step counterpart) -> BENCHMARKS.md."""
    from foleyflow.pipelines import distill_bench as db

    do_generator, do_editor = bool(teacher or students), bool(edit_teacher or edit_student)
    if not do_generator and not do_editor:
        raise InputError("give --teacher and --student WEIGHTING=DIR (generator), --edit-teacher and --edit-student DIR (editor), or both")
    if do_generator and not (teacher and students):
        raise InputError("the generator table needs both --teacher and at least one --student WEIGHTING=DIR")
    if do_editor and not (edit_teacher and edit_student):
        raise InputError("the editor table needs both --edit-teacher and --edit-student DIR")
    command = _bench_command(locals())
    if do_generator:
        db.require_backbones(backbones)  # fail in one line before any model runs
        _bench_generator(db, teacher, students, teacher_steps, student_steps, count, runs, manifest, split, backbones, batch_size, work_dir, benchmarks_path, seed, command)
    if do_editor:
        _bench_editor(db, edit_teacher, edit_student, edit_teacher_steps, edit_student_steps, edit_n, split, data_dir, benchmarks_path, seed, command)


def _bench_command(params: dict[str, Any]) -> str:
    """The command line that reproduces this measurement (for BENCHMARKS.md)."""
    parts = ["foleyflow bench distill"]
    for name, flag in (("teacher", "--teacher"), ("edit_teacher", "--edit-teacher"), ("edit_student", "--edit-student"), ("data_dir", "--data")):
        if params.get(name):
            parts.append(f"{flag} {params[name]}")
    parts += [f"--student {spec}" for spec in params["students"]]
    if params["students"]:  # the generator table's settings
        parts += [f"--backbone {spec}" for spec in params["backbones"]]
        parts.append(f"--n {params['count']} --runs {params['runs']}")
    if params.get("edit_student"):  # the editor table's
        parts.append(f"--edit-n {params['edit_n']}")
    parts.append(f"--seed {params['seed']}")
    return " ".join(parts)


def _bench_generator(db, teacher, students, teacher_steps, student_steps, count, runs, manifest, split, backbones, batch_size, work_dir, benchmarks_path, seed, command) -> None:
    from pathlib import Path

    from foleyflow.data.export import held_out_prompts
    from foleyflow.evaluation.suite import parse_backbones
    from foleyflow.generator_bench import parse_steps
    from foleyflow.training.config import expand_path, foleyflow_home

    rows, notes = db.generator_rows(teacher, db.parse_students(students), parse_steps(teacher_steps, "--teacher-steps"), parse_steps(student_steps, "--student-steps"))
    prompts = held_out_prompts(expand_path(manifest), split, count, seed)
    chosen = parse_backbones(backbones)
    work = Path(work_dir) if work_dir else foleyflow_home() / "bench" / "distill"
    report = db.run_generator_bench(rows, prompts, chosen, work, runs, seed, batch_size)
    table = db.format_generator_table(report)
    body = "\n".join([
        "### Generator: BSA progressive distillation (seed 003, Table 1 in our world)",
        "",
        f"`{command}` on {machine_description()}; {report['clips']} {split} captions, {runs} runs; mean over runs [95% Student-t CI over runs].",
        "Backbones: " + ", ".join(f"{role} = {name}" for role, name in report["backbones"].items()) + ". Teacher rows at the teacher's own guidance, students unguided (cfg 1).",
        "",
        table,
        "",
        *(f"- {line}" for line in db.generator_verdict(report) + notes),
    ])
    db.write_block(benchmarks_path, "generator", body)
    click.echo(table)
    click.echo(f"-> {benchmarks_path}")


def _bench_editor(db, teacher, student_dir, teacher_steps, student_steps, count, split, data_dir, benchmarks_path, seed, command) -> None:
    from foleyflow.generator_bench import parse_steps
    from foleyflow.pipelines.edit_bench import compare_editors, format_table, test_triplets

    methods, notes = db.editor_methods(teacher, student_dir, parse_steps(teacher_steps, "--edit-teacher-steps"), parse_steps(student_steps, "--edit-student-steps"))
    report = compare_editors(methods, test_triplets(split, count, seed, data_dir), seed)
    table = format_table(report)
    body = "\n".join([
        "### Editor: few-step editing by Euler-step halving",
        "",
        f"`{command}` on {machine_description()}; {split} triplets of the editing set; [95% paired bootstrap CI over triplets].",
        "",
        table,
        "",
        *(f"- {line}" for line in db.editor_verdict(report) + notes),
    ])
    db.write_block(benchmarks_path, "editor", body)
    click.echo(table)
    click.echo(f"-> {benchmarks_path}")
