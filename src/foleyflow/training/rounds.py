"""Progressive distillation's outer loop on the shared trainer (Algorithm 1 of seed 003).

For each round (``foleyflow.diffusion.distill.progressive_rounds``): a fresh training run in
``OUT/round-k`` whose teacher is the previous round's exported student; after it, N halves.
Every round is an ordinary trainer run, so an interrupted distillation resumes where it
stopped (same command: finished rounds are skipped, the running one resumes from its last
checkpoint). ``OUT/distillation.json`` lists the finished rounds and their models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from foleyflow.atomic import atomic_path
from foleyflow.diffusion.distill import DistillationRound
from foleyflow.training.config import TrainConfig, expand_path

SUMMARY_NAME = "distillation.json"


def read_summary(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / SUMMARY_NAME
    return json.loads(path.read_text()) if path.is_file() else {"rounds": {}}


def _write_summary(out_dir: Path, summary: Mapping[str, Any]) -> None:
    with atomic_path(Path(out_dir) / SUMMARY_NAME) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def round_config(base: Mapping[str, Any], teacher: str, options: Mapping[str, Any], out_dir: Path, number: int) -> TrainConfig:
    """The trainer config of one round: the base config with this round's teacher and options."""
    recipe_options = {**base.get("recipe_options", {}), **options, "teacher": teacher}
    return TrainConfig.from_dict({**base, "recipe_options": recipe_options, "output_dir": str(Path(out_dir) / f"round-{number}")})


def run_rounds(
    base: Mapping[str, Any],
    teacher: str,
    rounds: Sequence[DistillationRound],
    out_dir: str | Path,
    round_options: Callable[[DistillationRound], Mapping[str, Any]],
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) every round; returns one summary entry per round, the last holding the final student.

    ``base`` is a trainer config as a dict (its ``recipe`` names the distillation recipe);
    ``round_options`` gives the recipe options that change per round (teacher steps, guidance).
    """
    from accelerate import PartialState

    from foleyflow.training.registry import build_recipe
    from foleyflow.training.trainer import Trainer

    state = PartialState()
    out_dir = Path(expand_path(str(out_dir)))
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = read_summary(out_dir)
    entries = []
    for spec in rounds:
        config = round_config(base, teacher, round_options(spec), out_dir, spec.number)
        settings = json.loads(json.dumps(config.to_dict()))
        entry = summary["rounds"].get(str(spec.number))
        if entry is None or entry["config"] != settings or not (Path(entry["model"]) / "config.json").is_file():
            result = Trainer(config, build_recipe(config.recipe, config.recipe_options)).fit()
            # Under `accelerate launch` only the main process exports and writes the summary;
            # every process then reads the student from the same place.
            model_dir = config.run_dir() / "model"
            entry = {
                "round": spec.number,
                "teacher": teacher,
                "teacher_steps": spec.teacher_steps,
                "student_steps": spec.student_steps,
                "teacher_guidance": spec.teacher_guidance,
                "model": str(model_dir),
                "optimizer_steps": result.step,
                "wall_seconds": result.wall_seconds,
                "config": settings,
            }
            summary["rounds"][str(spec.number)] = entry
            summary["final"] = entry["model"]
            if state.is_main_process:
                _write_summary(out_dir, summary)
            state.wait_for_everyone()
        entries.append(entry)
        if on_round is not None:
            on_round(entry)
        teacher = entry["model"]  # eta <- theta: the student becomes the next teacher
    return entries


def students_by_steps(out_dir: str | Path) -> dict[int, str]:
    """{student steps: model folder} of a distillation output folder's finished rounds."""
    summary = read_summary(Path(out_dir))
    return {int(entry["student_steps"]): entry["model"] for entry in summary["rounds"].values()}
