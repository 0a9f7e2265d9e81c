"""`foleyflow distill tta|edit`: progressive distillation into fewer sampling steps, K rounds on the shared trainer."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from foleyflow.errors import InputError
from foleyflow.interfaces.cli import distill

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
