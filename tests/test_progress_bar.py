"""interfaces.progress: the CLI's bar follows the library's (done, total) reports."""

import io

from foleyflow.interfaces.progress import progress_bar


def test_the_bar_is_made_on_the_first_report_and_follows_the_counts():
    out = io.StringIO()
    with progress_bar("edit", "NFE", disable=False, file=out, mininterval=0) as report:
        assert out.getvalue() == ""  # nothing before the first report
        for done in range(1, 5):
            report(done, 4)
        assert "4/4" in out.getvalue() and "edit" in out.getvalue()


def test_off_the_terminal_the_bar_writes_nothing():
    out = io.StringIO()  # not a terminal: tqdm's disable=None turns the bar off
    with progress_bar("generate", "step", file=out) as report:
        report(1, 2)
        report(2, 2)
    assert out.getvalue() == ""
