"""The trainer's loop: schedules, EMA, validation, optimizer groups, logging, export, CLI."""

import json
import math

import pytest
import torch

from foleyflow.interfaces.cli import main
from foleyflow.models.checkpoint import load_config, load_weights
from training_helpers import checkpoint_weights, toy_config, train_in_process


def _metrics(run_dir, split):
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if line["split"] == split]


def test_training_lowers_the_validation_loss_and_logs_everything(tmp_path):
    result = train_in_process(toy_config(tmp_path / "run", max_steps=40, val_every=10, optimizer={"lr": 0.05}))
    losses = [entry["val_loss"] for entry in result.val_history]
    assert [entry["step"] for entry in result.val_history] == [10, 20, 30, 40]
    train = _metrics(result.run_dir, "train")
    assert len(train) == 40
    assert losses[-1] < 0.5 * train[0]["loss"] and losses[-1] < losses[0]
    assert list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((result.run_dir / "config.json").read_text())["max_steps"] == 40


def test_linear_schedule_warms_up_then_decays_to_zero(tmp_path):
    config = toy_config(tmp_path / "run", max_steps=10, optimizer={"lr": 0.01, "lr_schedule": "linear", "warmup_steps": 4})
    lrs = [entry["lr"] for entry in _metrics(train_in_process(config).run_dir, "train")]
    # lr after optimizer step k (k = 1..10): warm-up k/4, then linear decay (10 - k) / 6.
    expected = [0.01 * (k / 4 if k < 4 else (10 - k) / 6) for k in range(1, 11)]
    assert lrs == pytest.approx(expected)


def test_cosine_schedule_follows_half_a_cosine(tmp_path):
    config = toy_config(tmp_path / "run", max_steps=8, optimizer={"lr": 0.01, "lr_schedule": "cosine", "warmup_steps": 0})
    lrs = [entry["lr"] for entry in _metrics(train_in_process(config).run_dir, "train")]
    assert lrs == pytest.approx([0.01 * 0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(1, 9)])


def test_export_writes_the_ema_weights_as_a_model_folder(tmp_path):
    result = train_in_process(toy_config(tmp_path / "run", max_steps=6, checkpoint_every=6))
    exported = load_weights(result.model_dir)
    ema = checkpoint_weights(result.run_dir, 6)  # raw weights of the last step
    from safetensors.torch import load_file

    shadow = load_file(str(result.run_dir / "checkpoints" / "step-00000006" / "ema.safetensors"))
    for key, value in exported.items():
        assert torch.equal(value, shadow[f"net.{key}"])
    assert any(not torch.equal(exported[key], ema[f"net.{key}"]) for key in exported)
    assert load_config(result.model_dir)["class"] == "ToyMLP"
    assert "optimizer steps: 6" in (result.model_dir / "MODEL_CARD.md").read_text()


def test_validation_does_not_change_the_training_trajectory(tmp_path):
    often = train_in_process(toy_config(tmp_path / "often", max_steps=8, val_every=1, checkpoint_every=8))
    rarely = train_in_process(toy_config(tmp_path / "rarely", max_steps=8, val_every=100, checkpoint_every=8))
    first, second = checkpoint_weights(often.run_dir, 8), checkpoint_weights(rarely.run_dir, 8)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert len(often.val_history) == 8 and len(rarely.val_history) == 1


def test_adversarial_groups_each_step_their_own_optimizer(tmp_path):
    config = toy_config(
        tmp_path / "run",
        max_steps=4,
        checkpoint_every=4,
        recipe_options={"adversarial": True},
        group_optimizers={"discriminator": {"lr": 0.05, "lr_schedule": "constant", "warmup_steps": 0}},
    )
    result = train_in_process(config)
    last = _metrics(result.run_dir, "train")[-1]
    assert last["discriminator/lr"] == pytest.approx(0.05)
    assert last["generator/lr"] != pytest.approx(0.05)
    assert {"generator/loss", "discriminator/loss", "generator/mse"} <= set(last)
    state = checkpoint_weights(result.run_dir, 4)
    assert any(key.startswith("critic.") for key in state) and not any(key.startswith("frozen_scale.") for key in state)


def test_bf16_mixed_precision_runs_on_cpu(tmp_path):
    result = train_in_process(toy_config(tmp_path / "run", max_steps=3, mixed_precision="bf16"))
    assert result.step == 3 and math.isfinite(result.val_history[-1]["val_loss"])


def test_cli_trains_and_refuses_a_config_of_another_recipe(tmp_path, capsys):
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    config = toy_config(tmp_path / "run", max_steps=2)
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(config.to_dict()))
    assert main(["train", "toy", "--config", str(path), "--set", "optimizer.lr=0.001", "--out", str(tmp_path / "cli")]) == 0
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["optimizer"]["lr"] == 0.001
    assert "toy: 2 steps" in capsys.readouterr().out
    path.write_text(json.dumps({**config.to_dict(), "recipe": "other"}))
    assert main(["train", "toy", "--config", str(path)]) == 2
    assert "not 'toy'" in capsys.readouterr().err
    assert main(["train", "toy", "--config", str(tmp_path / "missing.json")]) == 2


def test_export_best_keeps_the_weights_of_the_lowest_validation_loss(tmp_path):
    result = train_in_process(toy_config(tmp_path / "run", max_steps=12, val_every=2, export_best=True, optimizer={"lr": 0.05}))
    losses = [entry["val_loss"] for entry in result.val_history]
    best_step = result.val_history[losses.index(min(losses))]["step"]
    card = (result.run_dir / "model-best" / "MODEL_CARD.md").read_text()
    assert f"at step {best_step}" in card
