"""`foleyflow train curve`: a run's metrics.jsonl read back and plotted as train / val loss vs step."""

import json

import pytest

from foleyflow.errors import InputError
from foleyflow.training.metrics import loss_curves, read_metrics
from training_helpers import toy_config, train_in_process


def _write(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def test_curves_pick_the_loss_figures_of_each_split(tmp_path):
    _write(tmp_path / "metrics.jsonl", [
        {"step": 10, "split": "train", "loss": 0.9, "lr": 1e-4},
        {"step": 20, "split": "train", "loss": 0.5, "grad_norm": 2.0},
        {"step": 20, "split": "val", "val_loss": 0.7},
        {"step": 30, "split": "train", "generator/loss": 3.0, "discriminator/loss": 1.0},
    ])
    curves = loss_curves(read_metrics(tmp_path))
    assert curves == {
        "train/loss": ([10, 20], [0.9, 0.5]),
        "val_loss": ([20], [0.7]),
        "train/generator/loss": ([30], [3.0]),
        "train/discriminator/loss": ([30], [1.0]),
    }


def test_missing_empty_or_broken_metrics_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such metrics file"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no metrics logged"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 1}\n{"loss": 2}\n')
    with pytest.raises(InputError, match="metrics.jsonl:2"):
        read_metrics(tmp_path)


def test_cli_plots_a_real_run(tmp_path, cli):
    run = train_in_process(toy_config(tmp_path / "run", max_steps=8)).run_dir
    code, out, err = cli("train", "curve", str(run), "-o", str(tmp_path / "curve.png"))
    assert code == 0, err
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    train_steps = [r["step"] for r in read_metrics(run) if r["split"] == "train"]
    assert f"train/loss: {len(train_steps)} points to step 8" in out and "val_loss: " in out
    code, _, err = cli("train", "curve", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.png"))
    assert code == 2 and "no such metrics file" in err and not (tmp_path / "x.png").exists()
