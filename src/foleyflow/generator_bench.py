"""`foleyflow bench generate`: seconds per generated clip at several step counts, and quality.

For each step count, ``n`` prompts (the first captions of held-out corpus clips, in a seeded
order spread over caption groups: ``data.export.held_out_prompts``) are generated one clip at a
time, 10.24 s long by default (beyond the model's training window the UNet runs on overlapping
windows, several calls per step), and each is timed end to end (text encoding, sampling, VAE
decoding, vocoder). Speed is reported as measured in this one run: seconds per clip with a
bootstrap 95% CI, the ratio to the first step count, the NFE (UNet calls; CFG's two branches run
as one doubled batch, one call), the time of one UNet forward measured on its own at the same
shape, and the overhead total / (NFE x forward) (1.0 would mean the UNet is all the cost).

Quality, when the in-world tagger and CLAP exist (shipped in ``src/foleyflow/pretrained`` or
given as folders): the evaluation suite's CLAP score (prompt vs generated audio), and the
tagger's KL (generated vs the clip the prompt came from, paired by name), IS, FD and FAD, each
with a bootstrap 95% CI. Without them the quality columns are left out, with a note.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from foleyflow.errors import InputError

FALLBACK_PROMPTS = ("rain falls on a roof", "a dog barks twice", "a cow moos", "wind blows through trees", "a bell rings", "footsteps on gravel")
QUALITY_ORDER = ("CLAP", "KL", "IS", "FD", "FAD")


@dataclasses.dataclass(frozen=True)
class BenchPrompt:
    name: str  # the generated file's stem; equal to the reference clip's stem, so KL pairs them
    caption: str
    reference: Path | None


@dataclasses.dataclass
class BenchSettings:
    model: str = "default"
    steps: tuple[int, ...] = (25, 50, 200)
    n: int = 4
    sampler: str = "ddim"
    cfg: float = 3.0
    duration: float = 10.24
    seed: int = 0
    data: str | None = None
    split: str = "test"
    tagger: str = "default"
    clap: str = "default"
    resamples: int = 200

    def command(self) -> str:
        """The command line that reproduces this run."""
        parts = ["foleyflow", "bench", "generate", "--model", self.model, "--steps", ",".join(map(str, self.steps)), "--n", str(self.n),
                 "--duration", f"{self.duration:g}", "--sampler", self.sampler, "--cfg", f"{self.cfg:g}", "--seed", str(self.seed)]
        for flag, value, default in (("--data", self.data, None), ("--split", self.split, "test"), ("--tagger", self.tagger, "default"), ("--clap", self.clap, "default")):
            if value != default:
                parts += [flag, str(value)]
        return " ".join(shlex.quote(part) for part in parts)


def parse_steps(text: str, option: str = "--steps") -> tuple[int, ...]:
    """A command line's comma-separated step counts ("25,50,200"); ``option`` names it in errors."""
    try:
        steps = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"{option} expects comma-separated whole numbers, e.g. 25,50,200; got {text!r}") from None
    if not steps or min(steps) < 1:
        raise InputError(f"{option} values must be >= 1, got {text!r}")
    return steps


def bench_prompts(count: int, seed: int, data: str | None, split: str) -> tuple[list[BenchPrompt], str]:
    """``count`` prompts and where they came from: held-out corpus clips (their first caption,
    the clip as reference) or, without a corpus, a fixed list and no references."""
    from foleyflow.data.export import held_out_prompts

    manifest = Path(data).expanduser() if data else _default_corpus()
    if data is None and not manifest.is_file():
        prompts = [FALLBACK_PROMPTS[index % len(FALLBACK_PROMPTS)] for index in range(count)]
        return [BenchPrompt(f"prompt{index:03d}", caption, None) for index, caption in enumerate(prompts)], "fixed prompts (no corpus found, so no reference clips)"
    chosen = [BenchPrompt(p.name, p.caption, p.reference) for p in held_out_prompts(manifest, split, count, seed)]
    return chosen, f"first captions of {count} {split} clips of {manifest} (seeded order, spread over captions)"


def _default_corpus() -> Path:
    from foleyflow.evaluation.cache import foleyflow_home

    return foleyflow_home() / "corpus" / "clips.jsonl"


class CallCounter:
    """Counts forward calls of a module (the NFE) through a pre-forward hook."""

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        self._handle = module.register_forward_pre_hook(self._count)

    def _count(self, module: torch.nn.Module, inputs: Any) -> None:
        self.calls += 1

    def remove(self) -> None:
        self._handle.remove()


@torch.no_grad()
def forward_seconds(generator: Any, cfg: float, repeats: int = 3) -> float:
    """Median seconds of one UNet call as generation makes it: one training window, batch 2
    (the two CFG branches) unless cfg = 1 leaves one."""
    batch = 1 if cfg == 1.0 else 2
    frames = generator.latent_frames(generator.train_seconds)
    z = torch.randn(batch, generator.unet.config.out_channels, frames, generator._latent_bins(), device=generator.device)
    states, mask = generator.text_encoder.encode(["rain falls"] * batch)
    index = torch.full((batch,), 500, device=generator.device)
    times = []
    for _ in range(repeats + 1):  # the first call warms up and is not counted
        started = time.perf_counter()
        generator._unet_call(z, index, states, mask)
        times.append(time.perf_counter() - started)
    return float(np.median(times[1:]))


def run_bench(settings: BenchSettings, workdir: Path) -> dict[str, Any]:
    from foleyflow.audio.io import write_audio
    from foleyflow.generator import Generator

    generator = Generator.from_pretrained(settings.model)
    prompts, source = bench_prompts(settings.n, settings.seed, settings.data, settings.split)
    backbones, quality_note = _quality_backbones(settings.tagger, settings.clap)
    generate = functools.partial(generator.generate, cfg=settings.cfg, seed=settings.seed, sampler=settings.sampler, duration=settings.duration)
    generate(prompts[0].caption, steps=1)  # warm-up
    forward = forward_seconds(generator, settings.cfg)
    rows = []
    for steps in settings.steps:
        folder = workdir / f"steps{steps}"
        counter = CallCounter(generator.unet)
        seconds = {}
        for prompt in prompts:
            started = time.perf_counter()
            audio = generate(prompt.caption, steps=steps)
            seconds[prompt.name] = time.perf_counter() - started
            write_audio(folder / f"{prompt.name}.wav", audio[0])
        counter.remove()
        row = _speed_row(steps, seconds, counter.calls // len(prompts), forward, settings)
        if backbones is not None:
            row.update(_quality(folder, prompts, backbones, settings))
        rows.append(row)
    first = rows[0]["seconds_per_clip"]["value"]
    for row in rows:
        row["ratio_to_first"] = row["seconds_per_clip"]["value"] / first
    return {
        "command": settings.command(),
        "model": str(settings.model),
        "clip_seconds": settings.duration,
        "train_seconds": generator.train_seconds,
        "sampler": settings.sampler,
        "cfg": settings.cfg,
        "seed": settings.seed,
        "prompts": source,
        "n": settings.n,
        "forward_s": forward,
        "forward_batch": 1 if settings.cfg == 1.0 else 2,
        "quality_note": quality_note,
        "rows": rows,
    }


def _speed_row(steps: int, seconds: dict[str, float], nfe: int, forward: float, settings: BenchSettings) -> dict[str, Any]:
    from foleyflow.evaluation.bootstrap import mean_ci

    per_clip = mean_ci(np.array(list(seconds.values())), settings.resamples, settings.seed)
    return {"steps": steps, "nfe": nfe, "seconds_per_clip": per_clip.to_dict(), "overhead": per_clip.value / (nfe * forward)}


def _quality_backbones(tagger: str, clap: str) -> tuple[Any, str | None]:
    """The in-world tagger and CLAP, or None and why not (a missing model is a note, not an error)."""
    from foleyflow.evaluation.backbones.inworld import InworldClapBackbone, InworldTaggerBackbone
    from foleyflow.evaluation.suite import Backbones

    missing = [f"{role} {name!r}" for role, name in (("tagger", tagger), ("clap", clap)) if not _model_exists(name, role)]
    if missing:
        return None, f"quality not measured: no in-world {' and no '.join(missing)} model (train them with `foleyflow train tagger|clap`, or pass --tagger/--clap DIR)"
    tagger_backbone = InworldTaggerBackbone(tagger)
    return Backbones(classifier=tagger_backbone, frames=tagger_backbone, clap=InworldClapBackbone(clap)), None


def _model_exists(name: str, component: str) -> bool:
    from foleyflow.models.checkpoint import CONFIG_NAME, shipped_model_dir

    folder = shipped_model_dir(component) if name == "default" else Path(name).expanduser()
    return (folder / CONFIG_NAME).is_file()


def _quality(folder: Path, prompts: Sequence[BenchPrompt], backbones: Any, settings: BenchSettings) -> dict[str, Any]:
    from foleyflow.evaluation.cache import FeatureCache
    from foleyflow.evaluation.suite import evaluate_sets

    generated = {prompt.name: folder / f"{prompt.name}.wav" for prompt in prompts}
    references = {prompt.name: prompt.reference for prompt in prompts if prompt.reference is not None}
    report = evaluate_sets(
        generated,
        references if len(references) == len(prompts) else None,
        backbones,
        FeatureCache(),
        captions={prompt.name: prompt.caption for prompt in prompts},
        resamples=settings.resamples,
        seed=settings.seed,
    )
    figures = {name: estimate.to_dict() for name, estimate in report.figures.items() if name in QUALITY_ORDER}
    notes = {name: why for name, why in report.notes.items() if name in QUALITY_ORDER}
    return {"quality": figures, "not_computed": notes, "backbones": report.info["backbones"]}


# --- output -------------------------------------------------------------------------------------


def _ci(estimate: dict[str, float], digits: int = 2) -> str:
    return f"{estimate['value']:.{digits}f} [{estimate['ci95_low']:.{digits}f}, {estimate['ci95_high']:.{digits}f}]"


def format_table(report: dict[str, Any]) -> str:
    """Markdown table: one row per step count; quality columns only when measured."""
    rows = report["rows"]
    quality = [name for name in QUALITY_ORDER if any(name in row.get("quality", {}) for row in rows)]
    first = rows[0]["steps"]
    header = ["steps", "NFE", "s per clip [95% CI]", f"time vs {first} steps", "overhead", *(f"{name} [95% CI]" for name in quality)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row["steps"]), str(row["nfe"]), _ci(row["seconds_per_clip"]), f"{row['ratio_to_first']:.2f}x", f"{row['overhead']:.2f}"]
        cells += [_ci(row["quality"][name], 3) if name in row.get("quality", {}) else "-" for name in quality]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_section(report: dict[str, Any], machine: str, when: str, curve: str | None = None) -> str:
    """The BENCHMARKS.md section: command, machine, setting, table, notes."""
    lines = [
        "```",
        report["command"],
        "```",
        "",
        f"Machine: {machine}; measured {when}. Model: `{report['model']}`.",
        f"Each clip {report['clip_seconds']:.2f} s, {report['sampler']} sampler, CFG {report['cfg']:g}, seed {report['seed']};"
        f" prompts: {report['prompts']}. Times are end to end per clip (text, sampling, VAE decode, vocoder), ratios within this one run.",
        f"One UNet forward (one {report['train_seconds']:.2f} s training window, batch {report['forward_batch']}): {report['forward_s']:.3f} s;"
        " NFE = UNet calls per clip (all windows); overhead = s per clip / (NFE x forward).",
        "",
        format_table(report),
        "",
    ]
    notes = sorted({f"{name}: not computed ({why})" for row in report["rows"] for name, why in row.get("not_computed", {}).items()})
    if report["quality_note"]:
        notes.insert(0, report["quality_note"])
    else:
        backbones = report["rows"][0].get("backbones", {})
        notes.insert(0, "quality backbones: " + ", ".join(f"{role} = {name}" for role, name in backbones.items()))
    lines += [f"- {note}" for note in notes]
    if curve:
        lines += ["", f"Validation loss of the training run: ![train and validation loss]({curve})"]
    return "\n".join(lines) + "\n"


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2)


def temporary_workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="foleyflow-bench-generate-")


def relative_link(target: str | os.PathLike, document: str | os.PathLike) -> str:
    """``target`` as a link from the markdown file ``document``."""
    return os.path.relpath(Path(target).resolve(), Path(document).resolve().parent)
