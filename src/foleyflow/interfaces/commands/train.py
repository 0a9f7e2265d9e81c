"""`foleyflow train NAME --config CONFIG`: one command per registered recipe, all sharing the trainer."""

from __future__ import annotations

import json
from typing import Any

import click

from foleyflow.errors import InputError
from foleyflow.interfaces.cli import train
from foleyflow.interfaces.params import PngOutput
from foleyflow.training.registry import RECIPES


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError(f"--set {text!r}: expected KEY=VALUE, e.g. optimizer.lr=1e-4")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw  # a bare string such as mixed_precision=bf16


def run_training(recipe_name: str, config_path: str, output_dir: str | None, overrides: tuple[str, ...], max_steps: int | None) -> None:
    from foleyflow.training.config import load_train_config
    from foleyflow.training.registry import build_recipe
    from foleyflow.training.trainer import Trainer

    values = dict(_parse_override(text) for text in overrides)
    if max_steps is not None:
        values["max_steps"] = max_steps
    if output_dir is not None:
        values["output_dir"] = output_dir
    config = load_train_config(config_path, values)
    if config.recipe != recipe_name:
        raise InputError(f"{config_path}: a {config.recipe!r} config, not {recipe_name!r}; run `foleyflow train {config.recipe}`")
    result = Trainer(config, build_recipe(config.recipe, config.recipe_options)).fit()
    if result.model_dir is not None:
        last = result.val_history[-1] if result.val_history else {}
        click.echo(f"{recipe_name}: {result.step} steps in {result.wall_seconds:.1f} s, model -> {result.model_dir}" + (f", val {json.dumps(last)}" if last else ""))


def _add_command(recipe_name: str) -> None:
    @train.command(name=recipe_name, help=f"Train the {recipe_name} recipe (resumes from the run folder's last checkpoint).")
    @click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="JSON training config (see docs/training.md).")
    @click.option("--out", "output_dir", default=None, type=click.Path(file_okay=False), help="Run folder (overrides the config's output_dir).")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, dotted for nested keys (repeatable).")
    @click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Override max_steps.")
    def command(config_path: str, output_dir: str | None, overrides: tuple[str, ...], max_steps: int | None) -> None:
        run_training(recipe_name, config_path, output_dir, overrides, max_steps)


for _name in RECIPES:
    _add_command(_name)


@train.command(name="export")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, exists=True))
@click.option("--step", type=click.IntRange(min=0), default=None, help="Checkpoint step (default: the latest kept).")
@click.option("--out", "output", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
def export(run_dir: str, step: int | None, output: str) -> None:
    """Export the model of a run's checkpoint (EMA weights when the run keeps them) without training."""
    from pathlib import Path

    from foleyflow.training.config import load_train_config
    from foleyflow.training.registry import build_recipe
    from foleyflow.training.trainer import Trainer

    config_path = Path(run_dir) / "config.json"
    if not config_path.is_file():
        raise InputError(f"{run_dir}: not a run folder (no config.json)")
    config = load_train_config(config_path)
    folder = Trainer(config, build_recipe(config.recipe, config.recipe_options), run_dir=run_dir).export_checkpoint(step, output)
    click.echo(f"{config.recipe}: checkpoint {'latest' if step is None else step} -> {folder}")


@train.command(name="ensemble-removers")
@click.argument("editors", metavar="EDITOR...", nargs=-1, required=True)
@click.option("--out", "output", required=True, type=click.Path(file_okay=False), help="Editor folder to write.")
def ensemble_removers_command(editors: tuple[str, ...], output: str) -> None:
    """Write the first EDITOR with the removers of all EDITORs averaged (their log-gains' mean).

    Each EDITOR is a model folder ("default": the shipped editor), e.g. the exports of
    `foleyflow train localise` runs with target removal-gains on other data builds; all must share
    the first one's instruction encoder and codec."""
    from pathlib import Path

    from foleyflow.pipelines.editor_io import ensemble_removers

    editor = ensemble_removers(editors)
    members = editor.config.remover["members"]
    card = f"# Editor with {members} removers averaged\n\n`foleyflow train ensemble-removers {' '.join(editors)}`: the first editor, " \
           f"its remover replaced by the mean of the log-gains of every editor's remover (members in this order: {', '.join(editors)}).\n"
    folder = editor.save_pretrained(Path(output), card)
    click.echo(f"ensemble of {members} removers -> {folder}")


@train.command(name="curve")
@click.argument("run_dir", metavar="RUN")
@click.option("-o", "--output", required=True, type=PngOutput(), help="PNG to write.")
@click.option("--linear", is_flag=True, help="Linear loss axis (default: logarithmic when every loss is positive).")
def curve(run_dir: str, output: str, linear: bool) -> None:
    """Plot train and validation loss vs step of a run folder (its metrics.jsonl) as PNG."""
    from pathlib import Path

    from foleyflow.plotting import save_loss_curves_png
    from foleyflow.training.metrics import loss_curves, read_metrics, summarise_curves

    curves = loss_curves(read_metrics(run_dir))
    if not curves:
        raise InputError(f"{run_dir}: the metrics hold no loss figures")
    save_loss_curves_png(output, curves, title=Path(run_dir).expanduser().resolve().name, log_scale=not linear)
    for line in summarise_curves(curves):
        click.echo(line)
    click.echo(f"-> {output}")
