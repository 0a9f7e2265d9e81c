"""BENCHMARKS.md sections: a benchmark replaces its own `## Heading` section and nothing else."""

from foleyflow.benchmarks import machine_description, read_section, write_section
from foleyflow.pipelines.distill_bench import write_block

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


def test_read_section_returns_the_body_only(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    assert read_section(path, "Editor") is None
    path.write_text(BEFORE)
    assert read_section(path, "Editor") == "editor figures\n\n```\n## not a heading (inside a code block)\n```"
    assert read_section(path, "Cache") == "cache figures" and read_section(path, "Missing") is None


def test_distillation_blocks_share_their_section_and_replace_only_themselves(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(BEFORE)
    write_block(path, "generator", "gen v1")
    write_block(path, "editor", "edit v1")
    write_block(path, "generator", "gen v2")
    text = path.read_text()
    assert text.startswith(BEFORE) and text.count("## Distillation") == 1
    assert read_section(path, "Distillation") == "<!-- distill:generator -->\ngen v2\n<!-- /distill:generator -->\n\n<!-- distill:editor -->\nedit v1\n<!-- /distill:editor -->"
    write_section(path, "Cache", "new cache")  # a later section rewrite keeps the blocks
    assert "gen v2" in path.read_text() and "edit v1" in path.read_text()


def test_machine_description_names_cores():
    assert "-core CPU" in machine_description()
