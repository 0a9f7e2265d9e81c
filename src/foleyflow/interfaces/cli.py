"""The `foleyflow` command: a thin layer over the library.

Error contract: one line on stderr, exit code 2 for bad usage or bad input, 1 for any other
failure, no traceback unless --debug, and no partial output file (writers are atomic).
"""

from __future__ import annotations

import json
import sys
import warnings

import click

from foleyflow import __version__
from foleyflow.errors import FoleyflowError
from foleyflow.interfaces.params import PngOutput

PROG = "foleyflow"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name=PROG, message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def cli(debug: bool) -> None:
    """Generate sound from text and edit recordings from a plain instruction."""


@cli.group()
def train() -> None:
    """Train a model from a config (vae, vocoder, tta, edit, tagger, clap)."""


@cli.group()
def bench() -> None:
    """Benchmarks that write their figures to BENCHMARKS.md."""


@cli.group()
def distill() -> None:
    """Progressive distillation of a generator or an editor into fewer steps."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(as_json: bool) -> None:
    """Versions, compute device and shipped models."""
    from foleyflow.info import system_info

    facts = system_info()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    click.echo(f"foleyflow {facts['foleyflow']} (python {facts['python']}, {facts['platform']})")
    click.echo(f"device: {facts['device']}")
    click.echo("libraries: " + ", ".join(f"{k} {v}" for k, v in facts["libraries"].items()))
    models = facts["shipped_models"]
    if not models:
        click.echo("shipped models: none")
    for component, model in models.items():
        click.echo(f"shipped model: {component:<10} {model['class']:<24} {model['size_mb']:>7.2f} MB  {model['path']}")


@cli.command()
@click.option("--out", "out_dir", default="demo_out", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--examples", "examples_dir", default=None, type=click.Path(file_okay=False), help="Folder of example clips.")
def demo(out_dir: str, examples_dir: str | None) -> None:
    """Edit the bundled example clips with the shipped editor (add, remove, replace)."""
    from foleyflow.models.checkpoint import list_shipped_models

    if "editor" not in list_shipped_models():
        from foleyflow.demo import run_demo

        click.echo("no editor is shipped yet: writing each example's log-mel spectrogram instead")
        for result in run_demo(out_dir, examples_dir):
            click.echo(result.summary())
        return
    from foleyflow.pipelines.editor import run_edit_demo

    for line in run_edit_demo(out_dir, examples_dir):
        click.echo(line)


@cli.command()
@click.argument("audio_path", metavar="IN")
@click.option("-o", "--output", required=True, type=PngOutput(), help="PNG to write.")
@click.option("--max-seconds", default=600.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Reject longer input.")
def spectrogram(audio_path: str, output: str, max_seconds: float) -> None:
    """Write the log-mel spectrogram of an audio file as PNG."""
    from foleyflow.audio.io import load_audio
    from foleyflow.audio.mel import log_mel
    from foleyflow.plotting import save_spectrograms_png

    audio = load_audio(audio_path, max_seconds=max_seconds)
    mel = log_mel(audio)[0].numpy()
    save_spectrograms_png(output, [(audio_path, mel)])
    click.echo(f"{audio_path}: {mel.shape[0]} frames x {mel.shape[1]} mel bins -> {output}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True, help="Port (0: any free one).")
@click.option("--editor", "editor_model", default="default", show_default=True, help="'default' or an editor model folder.")
@click.option("--generator", "generator_model", default="default", show_default=True, help="'default' or a generator model folder.")
def serve(host: str, port: int, editor_model: str, generator_model: str) -> None:
    """A web page to edit recordings and generate sound in the browser (Ctrl-C stops it)."""
    from foleyflow.interfaces.web import Studio, make_server

    server = make_server(Studio(editor_model, generator_model), host, port)
    click.echo(f"{PROG}: serving on http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo(f"{PROG}: stopped")
    finally:
        server.server_close()


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr, like errors (--debug keeps Python's own format)."""
    click.echo(f"{PROG}: warning: {str(message).splitlines()[0] if str(message) else category.__name__}", err=True)


def _fail(message: str, code: int) -> int:
    click.echo(f"{PROG}: error: {message}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (also used by the tests in-process)."""
    from foleyflow.interfaces.commands import load_all

    load_all()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _one_line_warning
            cli.main(args=argv, prog_name=PROG, standalone_mode=False)
        return 0
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        return _fail("aborted", 1)
    except click.ClickException as error:
        # Usage errors (unknown option, bad value, missing argument) are bad input: exit 2.
        return _fail(error.format_message().replace("\n", " "), 2 if isinstance(error, click.UsageError) else error.exit_code)
    except FoleyflowError as error:
        if debug:
            raise
        return _fail(str(error).replace("\n", " "), error.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as error:  # the last line of defence: one line, exit 1
        if debug:
            raise
        return _fail(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''} (run with --debug for details)", 1)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
