"""Click parameter types for output files whose format the name decides.

They check the suffix while the command line is parsed, so a wrong one fails in a line before
any model loads, rather than after minutes of work, or silently as data of another format under
the name. The rules themselves are the library's (``audio.io.audio_output_format``,
``plotting.check_png_path``); the imports stay inside ``convert`` so ``--help`` stays fast.
"""

from __future__ import annotations

import click

from foleyflow.errors import InputError


class AudioOutput(click.Path):
    """A file to write audio to: .wav, .flac, .ogg or .mp3."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False)

    def convert(self, value, param, ctx):
        from foleyflow.audio.io import audio_output_format

        value = super().convert(value, param, ctx)
        try:
            audio_output_format(value)
        except InputError as error:
            self.fail(str(error), param, ctx)
        return value


class PngOutput(click.Path):
    """A file to write a figure to: .png."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False)

    def convert(self, value, param, ctx):
        from foleyflow.plotting import check_png_path

        value = super().convert(value, param, ctx)
        try:
            check_png_path(value)
        except InputError as error:
            self.fail(str(error), param, ctx)
        return value
