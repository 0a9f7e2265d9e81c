"""Error types that the interfaces turn into one-line messages and exit codes."""


class FoleyflowError(Exception):
    """A failure foleyflow can explain in one line (exit code 1 on the command line)."""

    exit_code = 1


class InputError(FoleyflowError):
    """Bad input from the user: a file, an argument or a config (exit code 2)."""

    exit_code = 2


def preview(names: list[str], limit: int = 5) -> str:
    """The first ``limit`` names of a list an error message is about, and how many more there are."""
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")
