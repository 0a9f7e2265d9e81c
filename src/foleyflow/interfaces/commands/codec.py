"""`foleyflow codec ...` (round trips through a codec) and `foleyflow bench codec`.

`foleyflow train vae|vocoder` are the registry's recipes (``training.registry``), like every other."""

from __future__ import annotations

from pathlib import Path

import click

from foleyflow.errors import InputError
from foleyflow.interfaces.cli import bench, cli


@cli.group()
def codec() -> None:
    """The audio codec (log-mel + VAE + vocoder)."""


@codec.command()
@click.argument("audio_path", metavar="IN")
@click.option("-o", "--output", required=True, type=click.Path(), help="Audio to write: .wav, .flac, .ogg, .opus or .mp3 (a folder when IN is a folder).")
@click.option("--model", default="default", show_default=True, help='"default", a codec folder, an AudioLDM .ckpt, a diffusers or Tango folder.')
@click.option("--max-seconds", default=600.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Reject longer input.")
def roundtrip(audio_path: str, output: str, model: str, max_seconds: float) -> None:
    """Encode IN to VAE latents and decode it back to audio (what the codec keeps).

    IN may be a folder: every audio file in it goes to OUTPUT/<name>.wav (e.g. the sources of an
    edit manifest, as the "codec only" row of `foleyflow eval edit`)."""
    from foleyflow.audio.io import audio_output_format, load_audio
    from foleyflow.models.codec import Codec

    if Path(audio_path).is_dir():
        from foleyflow.evaluation.pairing import audio_files

        files = audio_files(audio_path)  # fails on an empty folder before the model loads
        model_codec = Codec.from_pretrained(model)
        seconds = sum(_roundtrip_one(model_codec, load_audio(path, max_seconds=max_seconds), Path(output) / f"{name}.wav")[0] for name, path in files.items())
        click.echo(f"{audio_path}: {len(files)} files -> {output} ({_vocoder_name(model_codec)}, {seconds / len(files):.2f} s per file)")
        return
    audio_output_format(output)  # a suffix with no audio format fails before the model loads
    audio = load_audio(audio_path, max_seconds=max_seconds)
    model_codec = Codec.from_pretrained(model)
    seconds, latent_shape = _roundtrip_one(model_codec, audio, Path(output))
    click.echo(f"{audio_path}: {audio.shape[-1] / 16000:.2f} s -> latents {latent_shape} -> {output} ({_vocoder_name(model_codec)}, {seconds:.2f} s)")


def _roundtrip_one(model_codec, audio, output: Path) -> tuple[float, tuple[int, ...]]:
    """Round-trip one clip to ``output``: (seconds encoding and decoding took, latent shape)."""
    import time

    import torch

    from foleyflow.audio.io import write_audio

    audio = torch.as_tensor(audio)
    if audio.numel() == 0:  # both modes: one empty file in a folder is a one-line error too
        raise InputError(f"{output.stem}: no samples")
    started = time.perf_counter()
    latents = model_codec.encode(audio)
    rebuilt = model_codec.decode(latents, audio.shape[-1])[0].numpy()
    seconds = time.perf_counter() - started
    write_audio(output, rebuilt)
    return seconds, tuple(latents.shape[1:])


def _vocoder_name(model_codec) -> str:
    from foleyflow.models.vocoder import vocoder_family

    return vocoder_family(model_codec.vocoder)


@bench.command(name="codec")
@click.option("--model", default="default", show_default=True, help="Codec to measure (as for `codec roundtrip`).")
@click.option("--split", default="test", show_default=True, help="Corpus split of the held-out clips.")
@click.option("--corpus-dir", default=None, type=click.Path(file_okay=False), help="Corpus folder (default $FOLEYFLOW_HOME/corpus).")
@click.option("--audio-folder", default=None, type=click.Path(file_okay=False), help="Measure on every audio file of this folder instead.")
@click.option("--max-clips", default=100, show_default=True, type=click.IntRange(min=1), help="At most this many clips (the first ones).")
@click.option("--against", "against", default=None, metavar="VOCODER",
              help='A second vocoder (a model folder, or "default" for the shipped one) to compare with clip by clip.')
@click.option("--against-vae", "against_vae", default=None, metavar="VAE",
              help='A second VAE (a model folder, or "default" for the shipped one) to compare with clip by clip, round trip and full chain.')
@click.option("--out", "output", default=None, type=click.Path(dir_okay=False), help="Markdown file to write the rows to.")
def bench_codec(model: str, split: str, corpus_dir: str | None, audio_folder: str | None, max_clips: int, against: str | None, against_vae: str | None, output: str | None) -> None:
    """VAE vs 4x avg-pool, vocoder vs Griffin-Lim (32 it.), and the full chain, on held-out clips."""
    import shlex
    import sys

    import torch

    from foleyflow.atomic import atomic_path
    from foleyflow.models.benchmark import benchmark_codec, markdown_rows
    from foleyflow.models.codec import Codec
    from foleyflow.models.vae import load_vae
    from foleyflow.models.vocoder import load_vocoder
    from foleyflow.training.recipes.codec import corpus_clips, folder_clips

    clips = folder_clips(audio_folder, "val", val_fraction=1.0) if audio_folder else corpus_clips(split, corpus_dir)
    if not clips:
        raise InputError(f"no {split} clips to measure on")
    against_vocoder = load_vocoder(against) if against else None
    second_vae = load_vae(against_vae) if against_vae else None
    figures = benchmark_codec(Codec.from_pretrained(model), clips[:max_clips], against=against_vocoder, against_vae=second_vae)
    command = "foleyflow " + " ".join(shlex.quote(arg) for arg in sys.argv[1:]) if sys.argv[0].endswith(("foleyflow", "__main__.py")) else f"foleyflow bench codec --model {model} --split {split}"
    rows = markdown_rows(figures, command, torch.get_num_threads())
    click.echo(rows, nl=False)
    if output:
        with atomic_path(output) as tmp:
            tmp.write_text(rows)


@bench.command(name="noise-floor")
@click.option("--model", default="default", show_default=True, help="Codec whose vocoder (a magnitude vocoder) to measure.")
@click.option("--seeds", default=4, show_default=True, type=click.IntRange(min=1), help="Pairs of realisations per spectrum.")
@click.option("--seconds", default=4.0, show_default=True, type=click.FloatRange(min=0.5, max=30.0), help="Length of each realisation.")
@click.option("--smooth-iterations", default=300, show_default=True, type=click.IntRange(min=0),
              help="Adam steps that move a waveform towards the smooth estimates (0: Griffin-Lim's output as it is).")
@click.option("--out", "output", default=None, type=click.Path(dir_okay=False), help="Markdown file to write the table to.")
def bench_noise_floor(model: str, seeds: int, seconds: float, smooth_iterations: int, output: str | None) -> None:
    """MR-STFT on stationary noise: Griffin-Lim, the vocoder, an ideal vocoder that samples, and smooth estimates (needs no corpus)."""
    import torch

    from foleyflow.atomic import atomic_path
    from foleyflow.models.codec import Codec
    from foleyflow.models.noise_floor import noise_floor, noise_floor_markdown

    rows = noise_floor(Codec.from_pretrained(model), seeds=seeds, seconds=seconds, smooth_iterations=smooth_iterations)
    command = f"foleyflow bench noise-floor --model {model} --seeds {seeds} --seconds {seconds:g} --smooth-iterations {smooth_iterations}"
    table = noise_floor_markdown(rows, command, torch.get_num_threads())
    click.echo(table, nl=False)
    if output:
        with atomic_path(output) as tmp:
            tmp.write_text(table)
