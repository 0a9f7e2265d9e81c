"""`foleyflow distill tta|edit` end to end on tiny models: rounds halve N, students record their sampler."""

import json

import numpy as np
import pytest
import torch
from editor_tiny import tiny_editor

from foleyflow.errors import InputError
from foleyflow.generator import Generator
from foleyflow.pipelines.editor import Editor
from foleyflow.training.recipes.distill import DistillRecipe
from foleyflow.training.rounds import students_by_steps
from training_helpers import make_tta_teacher

TRAINER = {"batch_size": 2, "val_every": 1, "val_batches": 1, "checkpoint_every": 1, "log_every": 1}


@pytest.fixture(scope="module")
def tta(tmp_path_factory):
    """A tiny v-prediction teacher generator and the data options to distil it on."""
    teacher, data, _ = make_tta_teacher(tmp_path_factory.mktemp("distill-tta"))
    return teacher, data


def _config(path, recipe, options):
    path.write_text(json.dumps({"recipe": recipe, "recipe_options": options, "max_steps": 1, **TRAINER}))
    return str(path)


def test_distill_tta_halves_n_each_round_and_the_student_samples_ddim_at_its_n(tta, tmp_path, cli):
    teacher, data = tta
    config = _config(tmp_path / "distill.json", "distill", {"data": data})
    args = ["distill", "tta", "--teacher", str(teacher), "--rounds", "2", "--start-steps", "8", "--weighting", "min-snr", "--config", config, "--out", str(tmp_path / "out")]
    code, out, err = cli(*args)
    assert code == 0, err
    students = students_by_steps(tmp_path / "out")
    assert sorted(students) == [2, 4]
    first, final = (json.loads((tmp_path / "out" / f"round-{k}" / "model" / "config.json").read_text()) for k in (1, 2))
    assert first["sampling"] == {"steps": 4, "cfg": 1.0, "sampler": "ddim"} and final["sampling"]["steps"] == 2
    assert first["distillation"]["teacher_guidance"] == 3.0 and final["distillation"]["teacher_guidance"] == 1.0  # only the first teacher is guided
    assert final["distillation"]["teacher"] == str((tmp_path / "out" / "round-1" / "model").resolve())  # the student became the teacher
    assert final["distillation"]["round"] == 2 and final["distillation"]["weighting"] == "min-snr"
    student = Generator.from_pretrained(students[2], device="cpu")
    assert student.sampling_settings() == (2, 1.0, "ddim")
    assert student.generate("rain falls").shape == (1, 5120)
    with pytest.raises(InputError, match="DDIM at 2 steps"):
        student.generate("rain falls", sampler="dpm")
    # The same command again finds both rounds done and trains nothing.
    before = (tmp_path / "out" / "distillation.json").read_text()
    code, out, _ = cli(*args)
    assert code == 0 and (tmp_path / "out" / "distillation.json").read_text() == before and "2 DDIM steps" in out


def test_the_student_starts_as_the_teacher_and_the_teacher_is_guided_with_the_empty_prompt(tta):
    teacher, data = tta
    recipe = DistillRecipe({"teacher": str(teacher), "teacher_steps": 4, "data": data})
    modules = recipe.build()
    for (name, a), (_, b) in zip(modules["unet"].state_dict().items(), modules["teacher"].state_dict().items()):
        assert torch.equal(a, b), name
    assert modules["unet"] is not modules["teacher"] and recipe.student_steps == 2 and recipe.guidance == 3.0
    batch = recipe.collate([recipe.dataset("train")[i] for i in range(2)])
    empty = recipe.encode_text([""])[0]
    torch.testing.assert_close(recipe.empty_prompt_states(), empty)

    def loss(guidance):
        recipe.guidance = guidance
        torch.manual_seed(3)
        return recipe.losses(modules, batch, "main", 0)[0].item()

    assert np.isfinite(loss(3.0)) and loss(3.0) != loss(1.0)


def test_distill_options_are_checked(tta):
    teacher, data = tta
    with pytest.raises(InputError, match="weighting"):
        DistillRecipe({"teacher": str(teacher), "weighting": "snr-squared", "data": data})
    with pytest.raises(InputError, match="even"):
        DistillRecipe({"teacher": str(teacher), "teacher_steps": 5, "data": data})
    with pytest.raises(InputError, match="unknown key"):
        DistillRecipe({"teacher": str(teacher), "data": {**data, "unet_preset": "tango-paper"}})


def test_distill_edit_halves_euler_steps_to_the_target(tmp_path, cli):
    torch.manual_seed(0)
    tiny_editor(steps=6, cfg_scale=2.0).save_pretrained(tmp_path / "teacher")
    config = _config(tmp_path / "edit.json", "distill-edit", {"data": {"factory": "editor_tiny:TinyTriplets"}})
    args = ["distill", "edit", "--teacher", str(tmp_path / "teacher"), "--target-steps", "2", "--config", config, "--out", str(tmp_path / "out")]
    code, out, err = cli(*args)  # 6 teacher steps -> starts at 8 = 2 x 2^2: rounds 8 -> 4 -> 2
    assert code == 0, err
    assert sorted(students_by_steps(tmp_path / "out")) == [2, 4]
    student = Editor.from_pretrained(students_by_steps(tmp_path / "out")[2])
    assert student.config.steps == 2 and student.config.cfg_scale == 1.0 and student.config.distillation["teacher_steps"] == 4
    assert student.config.distillation["teacher_guidance"] == 1.0 and student.config.t_start == 0.01
    result = student.edit(np.zeros(1024, np.float32), "Add a tone")
    assert result.nfe == 2 and result.audio.shape == (1024,)
    code, _, err = cli("distill", "edit", "--teacher", str(tmp_path / "teacher"), "--target-steps", "2", "--teacher-steps", "6", "--config", config, "--out", str(tmp_path / "x"))
    assert code == 2 and "power of two" in err


def test_distill_edit_trains_on_the_halving_loss_of_cached_or_cropped_latents(tmp_path, monkeypatch):
    """The edit recipe's ``losses`` must run the distillation objective (not the plain flow loss)."""
    from foleyflow.training.recipes import distill_edit
    from foleyflow.training.recipes.distill_edit import EditDistillRecipe

    torch.manual_seed(0)
    tiny_editor(steps=4, cfg_scale=2.0).save_pretrained(tmp_path / "teacher")
    recipe = EditDistillRecipe({"teacher": str(tmp_path / "teacher"), "data": {"factory": "editor_tiny:TinyTriplets"}, "crop_frames": 2, "crop_on_edit": 1.0})
    modules = recipe.build()
    dataset = recipe.dataset("train")
    batch = recipe.collate([dataset[0], dataset[1]])
    seen = []
    real = distill_edit.flow_halving_loss

    def recording(student, teacher, path, x_0, steps, t_start, **kwargs):
        seen.append((x_0.shape, steps, t_start, kwargs["student_args"]["source"].shape))
        return real(student, teacher, path, x_0, steps, t_start, **kwargs)

    monkeypatch.setattr(distill_edit, "flow_halving_loss", recording)
    torch.manual_seed(3)
    total, figures = recipe.losses(modules, batch, "main", 0)
    assert total.requires_grad and set(figures) == {"loss"}
    full_frames = recipe.latents(modules, batch, torch.device("cpu"))[1].shape[2]
    (x_0_shape, steps, t_start, source_shape), = seen
    assert steps == 2 and t_start == pytest.approx(0.01) and x_0_shape[2] == 2 < full_frames and source_shape == x_0_shape
    total.backward()
    assert any(p.grad is not None for p in modules["unet"].parameters())
    assert all(p.grad is None for p in modules["teacher_unet"].parameters())
    recipe.validate(modules, batch)  # the whole window, no crop
    assert seen[-1][0][2] == full_frames
