"""`foleyflow codec ...` (round trips through a codec) and `foleyflow train vae|vocoder`."""

from __future__ import annotations

import json

import click

from foleyflow.errors import InputError
from foleyflow.interfaces.cli import cli, train

CODEC_RECIPES = {
    "vae": "foleyflow.training.recipes.codec:VaeRecipe",
    "vocoder": "foleyflow.training.recipes.codec:VocoderRecipe",
}


@cli.group()
def codec() -> None:
    """The audio codec (log-mel + VAE + vocoder)."""


@codec.command()
@click.argument("audio_path", metavar="IN")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="WAV to write.")
@click.option("--model", default="default", show_default=True, help='"default", a codec folder, an AudioLDM .ckpt, a diffusers or Tango folder.')
@click.option("--max-seconds", default=600.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Reject longer input.")
def roundtrip(audio_path: str, output: str, model: str, max_seconds: float) -> None:
    """Encode IN to VAE latents and decode it back to audio (what the codec keeps)."""
    import time

    import torch

    from foleyflow.audio.io import load_audio, write_wav
    from foleyflow.models.codec import Codec

    audio = torch.as_tensor(load_audio(audio_path, max_seconds=max_seconds))
    if audio.numel() == 0:
        raise InputError(f"{audio_path}: no samples")
    model_codec = Codec.from_pretrained(model)
    started = time.perf_counter()
    latents = model_codec.encode(audio)
    rebuilt = model_codec.decode(latents, audio.shape[-1])[0].numpy()
    seconds = time.perf_counter() - started
    write_wav(output, rebuilt)
    vocoder = "HiFi-GAN" if model_codec.vocoder is not None else "Griffin-Lim"
    click.echo(f"{audio_path}: {audio.shape[-1] / 16000:.2f} s -> latents {tuple(latents.shape[1:])} -> {output} ({vocoder}, {seconds:.2f} s)")


def run_codec_training(name: str, config_path: str, output_dir: str | None, overrides: tuple[str, ...], max_steps: int | None) -> None:
    from foleyflow.interfaces.commands.train import _parse_override
    from foleyflow.training.config import load_train_config
    from foleyflow.training.registry import build_recipe
    from foleyflow.training.trainer import Trainer

    values = dict(_parse_override(text) for text in overrides)
    if max_steps is not None:
        values["max_steps"] = max_steps
    if output_dir is not None:
        values["output_dir"] = output_dir
    config = load_train_config(config_path, values)
    if config.recipe not in (name, CODEC_RECIPES[name]):
        raise InputError(f"{config_path}: a {config.recipe!r} config, not {name!r}")
    result = Trainer(config, build_recipe(CODEC_RECIPES[name], config.recipe_options)).fit()
    if result.model_dir is not None:
        last = result.val_history[-1] if result.val_history else {}
        click.echo(f"{name}: {result.step} steps in {result.wall_seconds:.1f} s, model -> {result.model_dir}" + (f", val {json.dumps(last)}" if last else ""))


def _add_training_command(name: str) -> None:
    @train.command(name=name, help=f"Train the {name} of the codec (resumes from the run folder's last checkpoint).")
    @click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help=f"JSON training config, e.g. configs/{name}-cpu.json.")
    @click.option("--out", "output_dir", default=None, type=click.Path(file_okay=False), help="Run folder (overrides the config's output_dir).")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, dotted for nested keys (repeatable).")
    @click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Override max_steps.")
    def command(config_path: str, output_dir: str | None, overrides: tuple[str, ...], max_steps: int | None) -> None:
        run_codec_training(name, config_path, output_dir, overrides, max_steps)


for _name in CODEC_RECIPES:
    _add_training_command(_name)
