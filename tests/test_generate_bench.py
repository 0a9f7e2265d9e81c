"""`foleyflow bench generate` on a tiny random generator: speed rows, quality columns, BENCHMARKS.md."""

import json

import pytest
import torch

from foleyflow.errors import InputError
from foleyflow.generator_bench import BenchSettings, bench_prompts, parse_steps
from training_helpers import CAPTIONS, make_tiny_generator

SMALL = [2, 2, 4, 4, 4, 8]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from foleyflow.evaluation.backbones.inworld import ClapModel, build_tagger, save_clap, save_tagger

    root = tmp_path_factory.mktemp("bench")
    assert make_tiny_generator(root) == root / "teacher"
    torch.manual_seed(0)
    save_tagger(root / "tagger", build_tagger(["rain", "dog", "cow"], tuple(SMALL)), ["rain", "dog", "cow"])
    save_clap(root / "clap", ClapModel(embed_dim=8, channels=tuple(SMALL)))
    return root


@pytest.fixture(autouse=True)
def _feature_cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("FOLEYFLOW_HOME", str(tmp_path / "home"))


def _args(root, *extra, duration="0.32"):  # 0.32 s: the tiny generator's window
    return ["bench", "generate", "--model", str(root / "teacher"), "--steps", "1,3", "--n", "2", "--duration", duration, "--data", str(root / "inputs" / "train.jsonl"), *extra]


def test_bench_times_each_step_count_and_scores_with_the_in_world_backbones(root, tmp_path, cli):
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\n## Editor\n\nkeep me\n")
    code, out, err = cli(*_args(root, "--tagger", str(root / "tagger"), "--clap", str(root / "clap"), "--benchmarks", str(benchmarks), "--json"))
    assert code == 0, err
    report = json.loads(out[: out.rindex("}") + 1])
    assert [row["steps"] for row in report["rows"]] == [1, 3]
    assert [row["nfe"] for row in report["rows"]] == [1, 3]  # DDIM: one (CFG-batched) UNet call per step
    first, second = report["rows"]
    # the ratio is arithmetic on the measured times (which step count is faster is the benchmark's
    # finding, not something a unit test on a loaded machine can assert)
    assert first["ratio_to_first"] == 1.0
    assert second["ratio_to_first"] == pytest.approx(second["seconds_per_clip"]["value"] / first["seconds_per_clip"]["value"])
    assert second["overhead"] == pytest.approx(second["seconds_per_clip"]["value"] / (3 * report["forward_s"]))
    assert {"CLAP", "KL", "FD", "FAD"} <= set(first["quality"]) and "IS" in first["not_computed"]
    assert -1.0 <= first["quality"]["CLAP"]["value"] <= 1.0
    text = benchmarks.read_text()
    assert text.startswith("# Benchmarks\n\n## Editor\n\nkeep me\n\n## Generator\n")
    assert "foleyflow bench generate --model" in text and "| 3 | 3 |" in text and "CLAP [95% CI]" in text and "-core CPU" in text


def test_without_backbones_the_quality_columns_are_skipped_with_a_note(root, tmp_path, cli):
    benchmarks = tmp_path / "BENCHMARKS.md"
    code, out, err = cli(*_args(root, "--tagger", str(tmp_path / "no-tagger"), "--clap", str(root / "clap"), "--benchmarks", str(benchmarks), duration="0.64"))
    assert code == 0, err
    assert "quality not measured: no in-world tagger" in out and "CLAP [95% CI]" not in out
    assert "| 1 | 3 |" in out and "| 3 | 9 |" in out  # two windows' length: three overlapping windows per step
    assert "## Generator" in benchmarks.read_text()
    code, out, _ = cli(*_args(root, "--tagger", str(tmp_path / "no-tagger"), "--no-write", "--benchmarks", str(tmp_path / "untouched.md")))
    assert code == 0 and not (tmp_path / "untouched.md").exists()


def test_prompts_come_from_the_manifest_in_a_seeded_order(root):
    prompts, source = bench_prompts(3, seed=1, data=str(root / "inputs" / "train.jsonl"), split="test")
    assert len({p.name for p in prompts}) == 3 and all(p.caption in CAPTIONS and p.reference.is_file() for p in prompts)
    assert [p.name for p in bench_prompts(3, 1, str(root / "inputs" / "train.jsonl"), "test")[0]] == [p.name for p in prompts]
    with pytest.raises(InputError, match="fewer than --n 5"):
        bench_prompts(5, 0, str(root / "inputs" / "train.jsonl"), "test")


def test_bad_arguments_are_input_errors(root, tmp_path, cli):
    assert parse_steps("25, 50,200") == (25, 50, 200)
    for text in ("", "25,x", "0,5"):
        with pytest.raises(InputError):
            parse_steps(text)
    with pytest.raises(InputError, match="--edit-teacher-steps"):
        parse_steps("8,x", "--edit-teacher-steps")
    code, _, err = cli(*_args(root, "--curve", str(tmp_path / "missing.png")))
    assert code == 2 and "no such loss-curve PNG" in err
    assert "--steps 25,50,200" in BenchSettings().command()
