"""BENCHMARKS.md sections: a benchmark replaces its own `## Heading` section and nothing else."""

from foleyflow.benchmarks import machine_description, write_section

BEFORE = """# Benchmarks

intro

## Editor

editor figures

```
## not a heading (inside a code block)
```

## Generator

old generator figures

## Cache

cache figures
"""


def test_a_section_is_replaced_in_place_and_the_others_are_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(BEFORE)
    write_section(path, "Generator", "new figures\n\n| a | b |")
    text = path.read_text()
    assert "old generator figures" not in text and "new figures\n\n| a | b |\n\n## Cache" in text
    assert text.replace("new figures\n\n| a | b |", "old generator figures") == BEFORE
    write_section(path, "Editor", "edited")  # the fenced "## " line belongs to the editor's section
    assert "not a heading" not in path.read_text() and "## Generator\n\nnew figures" in path.read_text()


def test_a_new_section_is_appended_and_a_missing_file_created(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    write_section(path, "Generator", "figures")
    write_section(path, "Cache", "more")
    text = path.read_text()
    assert text.startswith("# Benchmarks") and text.endswith("## Generator\n\nfigures\n\n## Cache\n\nmore\n")


def test_machine_description_names_cores():
    assert "-core CPU" in machine_description()
