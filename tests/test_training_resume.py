"""Checkpoints are atomic and a run killed with SIGKILL resumes to exactly the same weights."""

import json
import signal
import subprocess
import time

import torch

from foleyflow.training import state as ckpt
from training_helpers import PYTHON, checkpoint_weights, subprocess_env, toy_config, train_in_process

MAX_STEPS = 24


def _write_config(tmp_path, name, **overrides):
    config = toy_config(tmp_path / name, max_steps=MAX_STEPS, checkpoint_every=3, **overrides)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config.to_dict()))
    return path, config.run_dir()


def _train_command(config_path):
    return [PYTHON, "-m", "foleyflow", "train", "toy", "--config", str(config_path)]


def _wait_for_checkpoint(run_dir, step, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ckpt.latest_checkpoint(run_dir)
        if found is not None and found.name >= ckpt.checkpoint_name(step):
            return
        assert process.poll() is None, "the training process ended before it could be killed"
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared in time")


def test_sigkilled_run_resumes_to_the_same_weights(tmp_path):
    env = subprocess_env()
    # Slow steps (20 ms) so the kill lands while training, long before the last step.
    options = {"recipe_options": {"seconds_per_step": 0.02}}
    full_path, full_dir = _write_config(tmp_path, "full", **options)
    killed_path, killed_dir = _write_config(tmp_path, "killed", **options)
    subprocess.run(_train_command(full_path), env=env, check=True, capture_output=True)

    process = subprocess.Popen(_train_command(killed_path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(killed_dir, 6, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = int(ckpt.latest_checkpoint(killed_dir).name.split("-")[1])
    assert interrupted_at < MAX_STEPS and not (killed_dir / "model").exists()

    resumed = subprocess.run(_train_command(killed_path), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    final = f"step-{MAX_STEPS:08d}"
    for name in ("modules.safetensors", "ema.safetensors", "optimizer-main.safetensors"):
        expected = ckpt.read_tensors(full_dir / "checkpoints" / final / name)
        found = ckpt.read_tensors(killed_dir / "checkpoints" / final / name)
        assert expected.keys() == found.keys()
        for key in expected:
            assert torch.equal(expected[key], found[key]), f"{name}:{key} differs after resume"
    full_metrics = [json.loads(line) for line in (full_dir / "metrics.jsonl").read_text().splitlines()]
    resumed_metrics = [json.loads(line) for line in (killed_dir / "metrics.jsonl").read_text().splitlines()]
    assert resumed_metrics == full_metrics  # lines after the checkpoint were rewritten, not duplicated


def test_partial_checkpoints_are_ignored_and_cleaned(tmp_path):
    run_dir = tmp_path / "run"
    folder = ckpt.begin_checkpoint(run_dir, 5)
    (folder / "modules.safetensors").write_bytes(b"half-written")
    assert ckpt.latest_checkpoint(run_dir) is None
    train_in_process(toy_config(run_dir, max_steps=4, checkpoint_every=2, keep_checkpoints=1))
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-00000004"]


def test_resume_from_an_older_checkpoint_in_process_matches(tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    train_in_process(toy_config(run_dir, max_steps=8))
    expected = checkpoint_weights(run_dir, 8)
    shutil.rmtree(run_dir / "checkpoints" / "step-00000008")  # as if killed just before step 8's checkpoint
    result = train_in_process(toy_config(run_dir, max_steps=8))
    assert result.resumed_from == 4 and result.step == 8
    found = checkpoint_weights(run_dir, 8)
    assert all(torch.equal(expected[key], found[key]) for key in expected)


def test_resuming_a_run_folder_with_another_config_is_refused(tmp_path):
    import pytest

    from foleyflow.errors import InputError

    run_dir = tmp_path / "run"
    train_in_process(toy_config(run_dir, max_steps=2))
    with pytest.raises(InputError, match="different config \\(seed\\)"):
        train_in_process(toy_config(run_dir, max_steps=4, seed=99))


def test_sigterm_checkpoints_the_current_step_and_exits_143(tmp_path):
    config_path, run_dir = _write_config(tmp_path, "term", recipe_options={"seconds_per_step": 0.05})
    process = subprocess.Popen(_train_command(config_path), env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(run_dir, 3, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and "resume" in stderr
    stopped_at = int(ckpt.latest_checkpoint(run_dir).name.split("-")[1])
    last_logged = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    assert 3 <= stopped_at < MAX_STEPS and stopped_at == last_logged  # nothing trained after the checkpoint


def test_the_run_wall_time_adds_up_over_resumed_sessions(tmp_path):
    run_dir = tmp_path / "run"
    train_in_process(toy_config(run_dir, max_steps=4))
    first = ckpt.read_json(ckpt.latest_checkpoint(run_dir) / ckpt.STATE_NAME)["train_seconds"]
    result = train_in_process(toy_config(run_dir, max_steps=8))
    total = ckpt.read_json(ckpt.latest_checkpoint(run_dir) / ckpt.STATE_NAME)["train_seconds"]
    assert result.resumed_from == 4 and 0 < first < total
    card = (result.model_dir / "MODEL_CARD.md").read_text()
    assert "over all sessions of the run" in card


def test_export_writes_a_checkpoints_model_without_training(tmp_path, cli):
    """`foleyflow train export RUN --step N`: the model training would have exported at step N (EMA)."""
    from safetensors.torch import load_file

    run_dir = tmp_path / "run"
    train_in_process(toy_config(run_dir, max_steps=8, checkpoint_every=4, keep_checkpoints=2))
    final = load_file(str(run_dir / "model" / "model.safetensors"))
    code, out, err = cli("train", "export", str(run_dir), "--step", "8", "--out", str(tmp_path / "at8"))
    assert code == 0, err
    assert "checkpoint 8" in out
    at8 = load_file(str(tmp_path / "at8" / "model.safetensors"))
    assert at8.keys() == final.keys() and all(torch.equal(at8[k], final[k]) for k in final)  # the same EMA weights
    code, _, err = cli("train", "export", str(run_dir), "--step", "4", "--out", str(tmp_path / "at4"))
    assert code == 0, err
    at4 = load_file(str(tmp_path / "at4" / "model.safetensors"))
    assert any(not torch.equal(at4[k], final[k]) for k in final)  # an earlier step: other weights
    assert "checkpoint step-00000004" in (tmp_path / "at4" / "MODEL_CARD.md").read_text()
    assert len(list((run_dir / "checkpoints").iterdir())) == 2  # nothing trained, nothing checkpointed
    code, _, err = cli("train", "export", str(run_dir), "--step", "3", "--out", str(tmp_path / "at3"))
    assert code != 0 and "no complete checkpoint for step 3 (kept: step-00000004, step-00000008)" in err
    assert not (tmp_path / "at3").exists()
