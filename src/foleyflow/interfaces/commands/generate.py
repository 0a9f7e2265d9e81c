"""`foleyflow generate PROMPT -o OUT.wav`: text-to-audio with a trained Tango generator."""

from __future__ import annotations

import time

import click

from foleyflow.interfaces.cli import cli


@cli.command()
@click.argument("prompt")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="WAV to write (several samples: OUT_0.wav, OUT_1.wav, ...).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True, max=300), default=10.24, show_default=True, help="Seconds of audio (Tango's clip length by default); beyond the model's training window, windows are cross-faded.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Sampler steps [default: the model's; Tango: 200, a distilled student: its N].")
@click.option("--cfg", type=click.FloatRange(min=0), default=None, help="Classifier-free guidance scale w [default: the model's; Tango: 3, a distilled student: 1].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the starting noise; the same seed gives the same file.")
@click.option("--model", default="default", show_default=True, help='"default" (shipped) or a generator folder.')
@click.option("--sampler", type=click.Choice(["ddim", "dpm", "ddpm"]), default=None, help="DDIM, DPM-Solver++(2M) or DDPM ancestral [default: the model's, DDIM].")
@click.option("--num-samples", type=click.IntRange(min=1), default=1, show_default=True, help="Samples for the prompt.")
@click.option("--spectrogram", type=click.Path(dir_okay=False), default=None, help="Also write the log-mel of each sample as one PNG.")
def generate(prompt: str, output: str, duration: float, steps: int | None, cfg: float | None, seed: int, model: str, sampler: str | None, num_samples: int, spectrogram: str | None) -> None:
    """Generate sound from a text PROMPT."""
    from foleyflow.generator import Generator, write_outputs

    generator = Generator.from_pretrained(model)
    steps, cfg, sampler = generator.sampling_settings(steps, cfg, sampler)
    started = time.perf_counter()
    audio = generator.generate(prompt, steps=steps, cfg=cfg, seed=seed, sampler=sampler, num_samples=num_samples, duration=duration)
    seconds = time.perf_counter() - started
    paths = write_outputs(audio, output)
    if spectrogram:
        from foleyflow.audio.mel import log_mel
        from foleyflow.plotting import save_spectrograms_png

        save_spectrograms_png(spectrogram, [(f"{path.name}: {prompt}", log_mel(row)[0].numpy()) for path, row in zip(paths, audio)])
    for path in paths:
        click.echo(f"{path}: {audio.shape[1] / 16000:.2f} s, {steps} {sampler} steps, cfg {cfg}, seed {seed} ({seconds / len(paths):.1f} s per sample)")
