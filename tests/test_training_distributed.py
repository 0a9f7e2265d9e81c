"""Two CPU processes under `accelerate launch` train exactly what one process does with the
combined batch: the data is sharded without overlap and gradients are averaged across processes."""

import json
import socket
import subprocess

import torch

from training_helpers import PYTHON, checkpoint_weights, subprocess_env, toy_config, train_in_process

# No dropout and no input noise: the two runs differ only in how the batch is split.
DETERMINISTIC = {"dropout": 0.0, "input_noise": 0.0}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_process_run_equals_one_process_with_the_combined_batch(tmp_path):
    two = toy_config(tmp_path / "two", max_steps=6, batch_size=4, checkpoint_every=3, recipe_options=DETERMINISTIC)
    config_path = tmp_path / "two.json"
    config_path.write_text(json.dumps(two.to_dict()))
    # --multi_gpu selects Accelerate's multi-process launcher; on a machine without CUDA the
    # trainer asks for the CPU, so Accelerate runs the processes on the gloo backend.
    command = [
        PYTHON, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        "-m", "foleyflow", "train", "toy", "--config", str(config_path),
    ]
    launched = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr[-2000:]
    step_dir = tmp_path / "two" / "checkpoints" / "step-00000006"
    assert json.loads((step_dir / "trainer_state.json").read_text())["num_processes"] == 2
    assert (step_dir / "rng-rank1.safetensors").is_file()

    one = train_in_process(toy_config(tmp_path / "one", max_steps=6, batch_size=8, checkpoint_every=3, recipe_options=DETERMINISTIC))
    expected, found = checkpoint_weights(one.run_dir, 6), checkpoint_weights(tmp_path / "two", 6)
    for key in expected:
        torch.testing.assert_close(found[key], expected[key], rtol=1e-5, atol=1e-6)
    initial = checkpoint_weights(one.run_dir, 3)
    assert any(not torch.equal(initial[key], expected[key]) for key in expected)  # it did train


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    accumulated = train_in_process(toy_config(tmp_path / "acc", batch_size=4, grad_accum_steps=2, recipe_options=DETERMINISTIC))
    large = train_in_process(toy_config(tmp_path / "large", batch_size=8, recipe_options=DETERMINISTIC))
    expected, found = checkpoint_weights(large.run_dir, 12), checkpoint_weights(accumulated.run_dir, 12)
    for key in expected:
        torch.testing.assert_close(found[key], expected[key], rtol=1e-5, atol=1e-6)
