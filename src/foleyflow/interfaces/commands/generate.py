"""`foleyflow generate PROMPT -o OUT.wav` (text-to-audio with a trained Tango generator) and `foleyflow bench generate`."""

from __future__ import annotations

import time
from pathlib import Path

import click

from foleyflow.errors import InputError
from foleyflow.interfaces.cli import bench, cli
from foleyflow.interfaces.params import AudioOutput, PngOutput
from foleyflow.interfaces.progress import progress_bar


@cli.command()
@click.argument("prompt", required=False)
@click.option("-o", "--output", type=AudioOutput(), default=None, help="Audio to write: .wav, .flac, .ogg, .opus or .mp3 (several samples: OUT_0.wav, OUT_1.wav, ...).")
@click.option("--prompts", "prompts_csv", type=click.Path(dir_okay=False), default=None,
              help="Instead of PROMPT: a CSV with name,caption (e.g. from `foleyflow data export-clips`); one WAV per row in --out-dir.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None, help="With --prompts: folder for <name>.wav and timing.csv.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, help="With --prompts: prompts sampled together.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True, max=300), default=10.24, show_default=True, help="Seconds of audio (Tango's clip length by default); beyond the model's training window, windows are cross-faded.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Sampler steps [default: the model's; the shipped one: 25, Tango: 200, a distilled student: its N].")
@click.option("--cfg", type=click.FloatRange(min=0), default=None, help="Classifier-free guidance scale w [default: the model's; Tango: 3, a distilled student: 1].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the starting noise; the same seed gives the same file (with --prompts, row k uses seed + k).")
@click.option("--model", default="default", show_default=True, help='"default" (shipped) or a generator folder.')
@click.option("--sampler", type=click.Choice(["ddim", "dpm", "ddpm"]), default=None, help="DDIM, DPM-Solver++(2M) or DDPM ancestral [default: the model's, DDIM].")
@click.option("--num-samples", type=click.IntRange(min=1), default=1, show_default=True, help="Samples for the prompt.")
@click.option("--spectrogram", type=PngOutput(), default=None, help="Also write the log-mel of each sample as one PNG.")
def generate(prompt: str | None, output: str | None, prompts_csv: str | None, out_dir: str | None, batch_size: int, duration: float, steps: int | None,
             cfg: float | None, seed: int, model: str, sampler: str | None, num_samples: int, spectrogram: str | None) -> None:
    """Generate sound from a text PROMPT (or from every row of --prompts CSV)."""
    from foleyflow.generator import Generator, check_prompt, write_outputs

    if prompts_csv is not None:
        _check_batch_arguments(prompt, output, out_dir, num_samples, spectrogram)
        _generate_batch(prompts_csv, out_dir, batch_size, duration, steps, cfg, seed, model, sampler)
        return
    if prompt is None or output is None:
        raise click.UsageError("give a PROMPT and -o OUT.wav (or --prompts CSV --out-dir DIR)")
    prompt = check_prompt(prompt)
    generator = Generator.from_pretrained(model)
    steps, cfg, sampler = generator.sampling_settings(steps, cfg, sampler)
    started = time.perf_counter()
    with progress_bar("generate", "step") as report:
        audio = generator.generate(prompt, steps=steps, cfg=cfg, seed=seed, sampler=sampler, num_samples=num_samples, duration=duration,
                                   on_step=report)
    seconds = time.perf_counter() - started
    paths = write_outputs(audio, output)
    if spectrogram:
        from foleyflow.audio.mel import log_mel
        from foleyflow.plotting import save_spectrograms_png

        save_spectrograms_png(spectrogram, [(f"{path.name}: {prompt}", log_mel(row)[0].numpy()) for path, row in zip(paths, audio)])
    for path in paths:
        click.echo(f"{path}: {audio.shape[1] / 16000:.2f} s, {steps} {sampler} steps, cfg {cfg}, seed {seed} ({seconds / len(paths):.1f} s per sample)")


def _check_batch_arguments(prompt, output, out_dir, num_samples, spectrogram) -> None:
    if prompt is not None or output is not None:
        raise click.UsageError("--prompts replaces PROMPT and -o; give --out-dir DIR instead")
    if out_dir is None:
        raise click.UsageError("--prompts needs --out-dir DIR")
    if num_samples != 1 or spectrogram:
        raise click.UsageError("--num-samples and --spectrogram apply to a single PROMPT only")


def _generate_batch(prompts_csv, out_dir, batch_size, duration, steps, cfg, seed, model, sampler) -> None:
    from foleyflow.data.export import read_prompts
    from foleyflow.generator import Generator
    from foleyflow.pipelines.batch import generate_folder

    prompts = read_prompts(prompts_csv)  # a bad CSV fails before the model loads
    generator = Generator.from_pretrained(model)
    steps, cfg, sampler = generator.sampling_settings(steps, cfg, sampler)
    seconds = generate_folder(generator, prompts, out_dir, steps=steps, cfg=cfg, sampler=sampler, seed=seed, duration=duration, batch_size=batch_size)
    mean = sum(seconds.values()) / len(seconds)
    click.echo(f"{len(seconds)} clips of {duration:g} s -> {out_dir} ({steps} {sampler} steps, cfg {cfg}, seeds {seed}..{seed + len(seconds) - 1}; {mean:.2f} s per clip)")


@bench.command("generate")
@click.option("--model", default="default", show_default=True, help='"default" (shipped) or a generator folder.')
@click.option("--steps", "steps_text", default="25,50,200", show_default=True, help="Comma-separated step counts.")
@click.option("--n", "count", type=click.IntRange(min=1), default=4, show_default=True, help="Clips (prompts) per step count.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True, max=300), default=10.24, show_default=True, help="Seconds per clip.")
@click.option("--sampler", type=click.Choice(["ddim", "dpm", "ddpm"]), default="ddim", show_default=True)
@click.option("--cfg", type=click.FloatRange(min=0), default=3.0, show_default=True, help="Classifier-free guidance scale.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise, the prompt order and the bootstrap.")
@click.option("--data", default=None, type=click.Path(dir_okay=False), help="Clip manifest for prompts and references [default: $FOLEYFLOW_HOME/corpus/clips.jsonl].")
@click.option("--split", default="test", show_default=True, help="Split of the manifest the prompts come from.")
@click.option("--tagger", default="default", show_default=True, help="In-world tagger folder for KL/IS/FD/FAD (skipped with a note if absent).")
@click.option("--clap", default="default", show_default=True, help="In-world CLAP folder for the CLAP score (skipped with a note if absent).")
@click.option("--benchmarks", "benchmarks_path", default="BENCHMARKS.md", show_default=True, type=click.Path(dir_okay=False), help='File whose "## Generator" section is (re)written.')
@click.option("--no-write", is_flag=True, help="Print only; leave the benchmarks file alone.")
@click.option("--curve", default=None, type=click.Path(dir_okay=False), help="Loss-curve PNG (`foleyflow train curve`) to link from the section.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def bench_generate(model, steps_text, count, duration, sampler, cfg, seed, data, split, tagger, clap, benchmarks_path, no_write, curve, as_json) -> None:
    """Seconds per generated clip at each step count (NFE, forward time, overhead), plus CLAP / tagger scores."""
    from foleyflow.benchmarks import machine_description, utc_now, write_section
    from foleyflow.generator_bench import BenchSettings, format_section, parse_steps, relative_link, report_json, run_bench, temporary_workdir

    if curve and not Path(curve).is_file():
        raise InputError(f"{curve}: no such loss-curve PNG (write it with `foleyflow train curve RUN -o {curve}`)")
    settings = BenchSettings(model=model, steps=parse_steps(steps_text), n=count, duration=duration, sampler=sampler, cfg=cfg, seed=seed, data=data, split=split, tagger=tagger, clap=clap)
    with temporary_workdir() as workdir:
        report = run_bench(settings, Path(workdir))
    report["machine"], report["measured"] = machine_description(), utc_now()
    link = relative_link(curve, benchmarks_path) if curve else None
    section = format_section(report, report["machine"], report["measured"], link)
    click.echo(report_json(report) if as_json else section)
    if not no_write:
        write_section(benchmarks_path, "Generator", section)
        if not as_json:
            click.echo(f"-> {benchmarks_path} (## Generator)")
