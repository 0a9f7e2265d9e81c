"""Click parameter types for output files whose format the name decides.

They check the suffix while the command line is parsed, so a wrong one fails in a line before
any model loads, rather than after minutes of work, or silently as data of another format under
the name. The rules themselves are the library's (``audio.io.audio_output_format``,
``plotting.check_png_path``); they are imported only when a path is checked, so ``--help`` stays fast.
"""

from __future__ import annotations

from typing import Callable

import click

from foleyflow.errors import InputError


class CheckedOutput(click.Path):
    """A file to write, its name checked by ``check`` (which raises InputError)."""

    def __init__(self, check: Callable[[str], object]) -> None:
        super().__init__(dir_okay=False)
        self.check = check

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        try:
            self.check(value)
        except InputError as error:
            self.fail(str(error), param, ctx)
        return value


def _audio_format(path: str) -> object:
    from foleyflow.audio.io import audio_output_format

    return audio_output_format(path)


def _png(path: str) -> object:
    from foleyflow.plotting import check_png_path

    return check_png_path(path)


def AudioOutput() -> CheckedOutput:
    """A file to write audio to: .wav, .flac, .ogg, .opus or .mp3."""
    return CheckedOutput(_audio_format)


def PngOutput() -> CheckedOutput:
    """A file to write a figure to: .png."""
    return CheckedOutput(_png)
