"""The edit path end to end on tiny seeded components: lengths, seeds, objectives, attention, save/load, demo."""

import numpy as np
import pytest
import soundfile as sf
import torch
from editor_tiny import tiny_editor

from foleyflow.errors import InputError
from foleyflow.pipelines.attention import AttentionRecorder, layer_grid, save_attention_png
from foleyflow.pipelines.editor import Editor, run_edit_demo

PNG = b"\x89PNG\r\n\x1a\n"


def _noise(samples: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


@pytest.mark.parametrize("samples", [300, 1024, 3000])
def test_edit_keeps_the_input_length_and_is_finite(samples):
    result = tiny_editor().edit(_noise(samples), "Add a dog barking")
    assert result.audio.shape == (samples,) and result.audio.dtype == np.float32
    assert np.isfinite(result.audio).all() and result.nfe == 4 and result.elapsed_s > 0


def test_the_same_seed_gives_the_same_edit_and_another_seed_differs():
    editor, audio = tiny_editor(), _noise(2000)
    first, again = editor.edit(audio, "Remove the bell", seed=3), editor.edit(audio, "Remove the bell", seed=3)
    other = editor.edit(audio, "Remove the bell", seed=4)
    assert np.array_equal(first.audio, again.audio) and not np.allclose(first.audio, other.audio)


def test_the_instruction_changes_the_edit():
    editor, audio = tiny_editor(), _noise(1024)
    assert not np.allclose(editor.edit(audio, "Add a dog").audio, editor.edit(audio, "Remove the rain").audio)


def test_heun_counts_two_evaluations_per_step_and_cfg_runs():
    editor = tiny_editor()
    assert editor.edit(_noise(500), "Add rain", steps=3, solver="heun", cfg_scale=2.0).nfe == 6


@pytest.mark.parametrize("objective, solver, cfg, steps, total", [
    ("flow", "euler", 1.0, 3, 3), ("flow", "heun", 2.0, 3, 6), ("ddpm", "euler", 2.0, 4, 4),
])
def test_progress_counts_every_network_evaluation_of_a_multi_window_edit(objective, solver, cfg, steps, total):
    """One report per evaluation, however many windows (they run as one batch) and CFG branches."""
    reports = []
    result = tiny_editor(objective).edit(_noise(3000), "Add rain", steps=steps, solver=solver, cfg_scale=cfg,
                                         progress=lambda done, of: reports.append((done, of)))
    assert reports == [(k, total) for k in range(1, total + 1)] and result.nfe == total


def test_ddpm_baseline_edits_at_the_requested_nfe():
    result = tiny_editor("ddpm").edit(_noise(700), "Add rain", steps=5)
    assert result.audio.shape == (700,) and result.nfe == 5 and np.isfinite(result.audio).all()


def test_an_edit_with_t_start_near_one_keeps_the_source():
    """x_start at t = 0.999 is almost the source latent; one tiny Euler step barely moves it (ReshapeCodec is exact)."""
    audio = _noise(1024)
    out = tiny_editor().edit(audio, "Add a dog", t_start=0.999, steps=1).audio
    assert np.max(np.abs(out - audio)) < 0.02


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(instruction="  "), "instruction is empty"),
        (dict(steps=0), "steps"),
        (dict(t_start=1.0), "t_start"),
        (dict(solver="rk4"), "solver"),
        (dict(cfg_scale=-1.0), "cfg"),
    ],
)
def test_bad_settings_are_input_errors(kwargs, message):
    arguments = dict(instruction="Add rain") | kwargs
    with pytest.raises(InputError, match=message):
        tiny_editor().edit(_noise(100), **arguments)


def test_attention_capture_gives_tokens_by_frames_over_the_whole_clip(tmp_path):
    result = tiny_editor().edit(_noise(3000), "Add a dog barking", attention=True, cfg_scale=2.0)
    frames = -(-3000 // 128)
    assert result.attention.shape == (4, frames) and result.tokens == ["add", "a", "dog", "barking"]
    assert np.isfinite(result.attention).all()
    # Probabilities over 4 real tokens (padding masked) sum to one at every frame.
    np.testing.assert_allclose(result.attention.sum(axis=0), 1.0, atol=1e-4)
    png = save_attention_png(tmp_path / "attn.png", result.attention, result.tokens, result.seconds)
    assert png.read_bytes()[:8] == PNG


def test_recording_attention_does_not_change_the_output():
    editor, audio = tiny_editor(), _noise(1024)
    plain = editor.edit(audio, "Add rain").audio
    assert np.array_equal(plain, editor.edit(audio, "Add rain", attention=True).audio)
    assert all("Recording" not in type(p).__name__ for p in editor.unet.attn_processors.values())


def test_recorder_averages_heads_and_levels_onto_latent_frames():
    editor = tiny_editor()
    states, mask = editor.text_encoder.encode(["add a dog", "remove it now"])
    with AttentionRecorder(editor.unet) as recorder:
        editor.unet(torch.randn(2, 16, 8, 16), torch.tensor([500.0, 500.0]), encoder_hidden_states=states, encoder_attention_mask=mask)
    maps = recorder.token_frame_map()
    assert maps.shape == (2, 3, 8)
    assert layer_grid((8, 16), 32) == (4, 8) and layer_grid((7, 16), 32) == (4, 8)


def test_save_and_load_round_trip_reproduces_the_edit(tmp_path):
    editor, audio = tiny_editor(), _noise(1500)
    editor.save_pretrained(tmp_path / "ed", card="# tiny\n")
    loaded = Editor.from_pretrained(tmp_path / "ed")
    assert (tmp_path / "ed" / "MODEL_CARD.md").read_text() == "# tiny\n"
    np.testing.assert_array_equal(editor.edit(audio, "Add rain").audio, loaded.edit(audio, "Add rain").audio)


def test_loading_refuses_missing_weights(tmp_path):
    editor = tiny_editor()
    editor.save_pretrained(tmp_path / "ed")
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "ed" / "model.safetensors")
    save_file({k: v for k, v in weights.items() if "lora_" not in k}, tmp_path / "ed" / "model.safetensors")
    with pytest.raises(InputError, match="missing .* keys"):
        Editor.from_pretrained(tmp_path / "ed")


def test_edit_demo_writes_outputs_and_before_after_spectrograms(tmp_path):
    examples = tmp_path / "examples"
    examples.mkdir()
    sf.write(examples / "park.wav", _noise(2400), 16000)
    lines = run_edit_demo(tmp_path / "out", examples, editor=tiny_editor())
    assert len(lines) == 3 and all("s per edit" in line for line in lines)
    assert not any("unchanged" in line for line in lines)  # no mask: every edit reaches everywhere
    for task in ("add", "remove", "replace"):
        assert sf.info(tmp_path / "out" / f"park_{task}.wav").frames == 2400
        assert (tmp_path / "out" / f"park_{task}.png").read_bytes()[:8] == PNG


def test_edit_demo_says_which_edits_came_back_unchanged(tmp_path):
    from editor_tiny import mask_head_editor

    examples = tmp_path / "examples"
    examples.mkdir()
    sf.write(examples / "park.wav", _noise(2400), 16000)
    # a learned mask at threshold 1 marks no frame (a sigmoid never reaches 1)
    editor = mask_head_editor(mask="learned", composite="audio", mask_threshold=1.0)
    lines = run_edit_demo(tmp_path / "out", examples, editor=editor)
    assert len(lines) == 3 and all("s per edit; unchanged: the learned mask marked no frame)" in line for line in lines)
    np.testing.assert_allclose(sf.read(tmp_path / "out" / "park_add.wav", dtype="float32")[0], _noise(2400), atol=1e-4)


def test_edit_demo_uses_a_clips_own_instructions(tmp_path):
    examples = tmp_path / "examples"
    examples.mkdir()
    sf.write(examples / "shore.wav", _noise(2400), 16000)
    (examples / "shore.edits.json").write_text('[["remove", "Remove the pig"]]')
    lines = run_edit_demo(tmp_path / "out", examples, editor=tiny_editor())
    assert len(lines) == 1 and "'Remove the pig'" in lines[0]
    (examples / "shore.edits.json").write_text('{"remove": 1}')
    with pytest.raises(InputError, match="shore.edits.json"):
        run_edit_demo(tmp_path / "out", examples, editor=tiny_editor())


def test_attention_labels_come_from_the_real_tokenizer():
    from foleyflow.models.text import TextEncoder
    from foleyflow.pipelines.editor import token_strings

    labels = token_strings(TextEncoder(), "Add a dog barking", 6)
    assert labels[0] == "[CLS]" and "dog" in labels and labels[-1] == "[SEP]"
