"""The editor's localiser (models.localiser, recipe ``localise``): it learns where the named sound
is, travels with the editor's folder, and serves ``mask: localiser``."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from editor_tiny import LATENT_BINS, LATENT_CHANNELS, TEXT_DIM, tiny_editor

from foleyflow.errors import InputError
from foleyflow.models.localiser import EditLocaliser, LocaliserConfig
from foleyflow.pipelines.editor import Editor
from foleyflow.pipelines.masks import finish_mask, frame_iou
from foleyflow.training.recipes.localise import LocaliseRecipe

SMALL = {"text_dim": TEXT_DIM, "stem_channels": 8, "width": 32, "dilations": [1, 2, 1], "film_after": 0, "attend_after": [1], "heads": 4}
FRAMES, SAMPLES_PER_FRAME = 16, LATENT_CHANNELS * LATENT_BINS


class ToneTriplets(torch.utils.data.Dataset):
    """"Remove the tone": the source is noise with a loud tone in a random run of frames, the target the noise alone."""

    def __init__(self, split: str = "train", count: int = 48, tasks: list[str] | None = None) -> None:
        rng = np.random.default_rng(0 if split == "train" else 1)
        samples = FRAMES * SAMPLES_PER_FRAME
        self.items = []
        for _ in range(count):
            first, frames = int(rng.integers(0, FRAMES - 4)), int(rng.integers(2, 5))
            start, length = first * SAMPLES_PER_FRAME, frames * SAMPLES_PER_FRAME
            noise = 0.05 * rng.standard_normal(samples).astype(np.float32)
            source = noise.copy()
            source[start : start + length] += np.sin(np.arange(length) * 0.7).astype(np.float32)
            # The recipe's region lives on the data set's 1024 mel frames of a 10.24 s window,
            # pooled to the latent frames: 64 mel frames per latent frame here.
            region = np.zeros(1024, dtype=bool)
            region[64 * first : 64 * (first + frames)] = True
            self.items.append({"source": torch.from_numpy(source), "target": torch.from_numpy(noise), "instruction": "Remove the tone",
                               "task": "remove", "edit_mask": region})
        self.items = [item for item in self.items if tasks is None or item["task"] in tasks]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def train_localiser(recipe, modules, train, steps: int) -> None:
    """``steps`` Adam steps (lr 3e-3, batches of 8 drawn with seed 0) on the recipe's localiser alone."""
    optimiser = torch.optim.Adam(modules["localiser"].parameters(), lr=3e-3)
    torch.manual_seed(0)
    for step in range(steps):
        rows = torch.randint(len(train), (8,)).tolist()
        loss, _ = recipe.losses(modules, recipe.collate([train[i] for i in rows]), "main", step)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def _base(tmp_path):
    torch.manual_seed(0)
    tiny_editor(window_seconds=FRAMES * SAMPLES_PER_FRAME / 16000, overlap_seconds=0.0).save_pretrained(tmp_path / "base")
    return str(tmp_path / "base")


def _recipe(tmp_path, **options):
    return LocaliseRecipe({"editor": _base(tmp_path), "localiser": SMALL, "data": {"factory": "test_edit_localiser:ToneTriplets"}, **options})


def test_the_localiser_gives_one_logit_per_latent_frame_and_its_config_round_trips():
    config = LocaliserConfig.from_dict({**SMALL, "latent_channels": LATENT_CHANNELS, "latent_bins": LATENT_BINS})
    assert LocaliserConfig.from_dict(config.to_dict()) == config
    json.dumps(config.to_dict())  # stored in the editor's config.json
    localiser = EditLocaliser(config)
    states, mask = torch.randn(3, 5, TEXT_DIM), torch.tensor([[1, 1, 0, 0, 0]] * 3)
    logits = localiser(torch.randn(3, LATENT_CHANNELS, 11, LATENT_BINS), states, mask)
    assert logits.shape == (3, 11)
    # Padding tokens are ignored: changing them changes nothing.
    states_b = states.clone()
    states_b[:, 2:] = torch.randn(3, 3, TEXT_DIM)
    x = torch.randn(1, LATENT_CHANNELS, 11, LATENT_BINS)
    assert torch.allclose(localiser(x, states[:1], mask[:1]), localiser(x, states_b[:1], mask[:1]), atol=1e-6)
    with pytest.raises(InputError, match="unknown keys width_typo"):
        LocaliserConfig.from_dict({"width_typo": 3})
    with pytest.raises(InputError, match="index"):
        LocaliserConfig.from_dict({"dilations": [1, 2], "attend_after": [4]})


def test_frame_iou():
    a = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    b = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]], dtype=torch.bool)
    assert frame_iou(a, b).tolist() == pytest.approx([1 / 3, 1.0, 0.0])


def test_the_recipe_learns_where_the_named_sound_is_and_trains_only_the_localiser(tmp_path):
    recipe = _recipe(tmp_path)
    modules = recipe.build()
    train, val = recipe.dataset("train"), recipe.dataset("val")
    val_batch = recipe.collate([val[i] for i in range(len(val))])
    before = recipe.validate(modules, val_batch)
    assert not any(p.requires_grad for p in modules["text_encoder"].parameters())
    train_localiser(recipe, modules, train, steps=120)
    after = recipe.validate(modules, val_batch)
    assert set(after) == {"val_loss", "val_iou"}
    assert after["val_loss"] < 0.5 * before["val_loss"]
    assert after["val_iou"] > 0.7 > before["val_iou"]


def test_the_export_is_the_base_editor_plus_the_localiser_and_serves_mask_localiser(tmp_path):
    recipe = _recipe(tmp_path)
    modules = recipe.build()
    folder = recipe.export(modules, tmp_path / "out", "card")
    editor = Editor.from_pretrained(folder)
    base = Editor.from_pretrained(tmp_path / "base")
    assert editor.config.localiser == recipe.localiser_config.to_dict() and base.config.localiser is None
    assert editor.config.mask == base.config.mask  # the default mask is not changed by adding a localiser
    for (name, a), (_, b) in zip(editor.unet.state_dict().items(), base.unet.state_dict().items()):
        assert torch.equal(a, b), name
    audio = ToneTriplets("val")[0]["source"].numpy()
    result = editor.edit(audio, "Remove the tone", mask="localiser", composite="end")
    assert result.mask_method == "localiser" and result.mask.shape == (FRAMES,)
    # The mask is the localiser's own probability on the source, thresholded at its default 0.5 and finished.
    x_source = editor.codec.encode(torch.from_numpy(audio)[None])
    (states, token_mask), _ = editor.encode_instruction("Remove the tone", 1)
    with torch.no_grad():
        probability = torch.sigmoid(editor.localiser(x_source, states, token_mask))[0]
    core = (probability >= 0.5).numpy()
    assert np.all(result.mask[core] == 1.0)
    options = dataclasses.replace(editor.config.mask_options(), smooth=1)
    expected = finish_mask(probability[None], editor.config.mask_options().threshold or 0.5, options, normalise=False)
    assert np.allclose(result.mask, expected.flatten().numpy(), atol=1e-6)
    with pytest.raises(InputError, match="needs an editor with a localiser"):
        base.edit(audio, "Remove the tone", mask="localiser")


def test_a_replace_can_ask_the_localiser_where_the_replaced_sound_is(tmp_path):
    recipe = _recipe(tmp_path)
    folder = recipe.export(recipe.build(), tmp_path / "out", "card")
    editor = Editor.from_pretrained(folder)
    audio = ToneTriplets("val")[0]["source"].numpy()
    x_source = editor.codec.encode(torch.from_numpy(audio)[None])

    def probability(text):
        (states, token_mask), _ = editor.encode_instruction(text, 1)
        with torch.no_grad():
            return torch.sigmoid(editor.localiser(x_source, states, token_mask).float())

    replace_text = "Swap the tone for a bell"
    asked_as_is = editor.localise(x_source, replace_text, editor.encode_instruction(replace_text, 1)[0])
    assert torch.allclose(asked_as_is, probability(replace_text), atol=1e-6)
    editor.config.localiser_query = "removed"
    asked_removed = editor.localise(x_source, replace_text, editor.encode_instruction(replace_text, 1)[0])
    assert torch.allclose(asked_removed, probability("Remove the tone"), atol=1e-6)
    assert not torch.allclose(asked_removed, asked_as_is, atol=1e-3)
    cond = editor.encode_instruction(replace_text, 1)[0]
    encoded, encode = [], editor.text_encoder.encode
    editor.text_encoder.encode = lambda texts: encoded.append(list(texts)) or encode(texts)
    editor.localise(x_source, replace_text, cond)
    assert encoded == [["Remove the tone"]]  # the query alone: the localiser has no use for the null instruction
    editor.text_encoder.encode = encode
    # Other tasks are asked as they are.
    add_text = "Add a bell"
    assert torch.allclose(editor.localise(x_source, add_text, editor.encode_instruction(add_text, 1)[0]), probability(add_text), atol=1e-6)
    # edit() uses it: the mask is the one the remove query gives.
    result = editor.edit(audio, replace_text, mask="localiser", composite="end")
    options = dataclasses.replace(editor.config.mask_options(), smooth=1)
    expected = finish_mask(probability("Remove the tone"), 0.5, options, normalise=False)
    assert np.allclose(result.mask, expected.flatten().numpy(), atol=1e-6)
    with pytest.raises(InputError, match="localiser_query"):
        dataclasses.replace(editor.config, localiser_query="where")


def test_a_folder_whose_localiser_weights_do_not_match_its_config_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    recipe = _recipe(tmp_path)
    folder = recipe.export(recipe.build(), tmp_path / "out", "card")
    weights = load_file(folder / "model.safetensors")
    dropped = next(key for key in weights if key.startswith("localiser."))
    save_file({k: v for k, v in weights.items() if k != dropped}, folder / "model.safetensors")
    with pytest.raises(InputError, match="localiser.*missing 1 keys"):
        Editor.from_pretrained(folder)
    # Weights without a config entry are refused as well.
    config = json.loads((folder / "config.json").read_text())
    config["localiser"] = None
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="unexpected"):
        Editor.from_pretrained(folder)


def test_train_localise_from_the_command_line(tmp_path, cli):
    config = tmp_path / "localise.json"
    config.write_text(json.dumps({"recipe": "localise", "recipe_options": {"editor": _base(tmp_path), "localiser": SMALL,
                                  "data": {"factory": "test_edit_localiser:ToneTriplets"}},
                                  "max_steps": 2, "batch_size": 4, "val_every": 2, "val_batches": 1, "checkpoint_every": 2, "log_every": 1}))
    code, out, err = cli("train", "localise", "--config", str(config), "--out", str(tmp_path / "run"))
    assert code == 0, err
    editor = Editor.from_pretrained(tmp_path / "run" / "model")
    assert editor.localiser is not None and "val_iou" in out


def test_the_shipped_localiser_config_parses_and_fits_the_default_editor():
    from pathlib import Path

    from foleyflow.training.config import load_train_config

    config = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "localiser-cpu.json")
    recipe = LocaliseRecipe(config.recipe_options)
    assert config.recipe == "localise" and recipe.localiser_config.latent_channels == 8 and recipe.localiser_config.text_dim == 384
    # The shipped localiser's recipe (session 27): the removal question on the 15,000-scene build, its best validation step kept.
    config = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "localiser-cpu-removed-15k.json")
    recipe = LocaliseRecipe(config.recipe_options)
    assert recipe.localise.query == "removed" and config.export_best and recipe.options.data["root"].endswith("datasets/editing-15k")


def test_a_distilled_student_keeps_its_teachers_localiser(tmp_path):
    from foleyflow.training.recipes.distill_edit import EditDistillRecipe

    recipe = _recipe(tmp_path)
    teacher = recipe.export(recipe.build(), tmp_path / "teacher", "card")
    distill = EditDistillRecipe({"teacher": str(teacher), "data": {"factory": "test_edit_localiser:ToneTriplets"}})
    student = Editor.from_pretrained(distill.export(distill.build(), tmp_path / "student", "card"))
    assert student.config.localiser == recipe.localiser_config.to_dict()
    for (name, a), (_, b) in zip(student.localiser.state_dict().items(), Editor.from_pretrained(teacher).localiser.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_localiser_can_train_on_replaces_asked_as_the_editor_asks_them(tmp_path):
    """``query: "removed"``: a replace trains as the remove instruction of its replaced sound, against
    that sound's span alone (the data set lists it first), as ``localiser_query: "removed"`` asks at
    edit time; other triplets are unchanged, and the export asks that way."""
    from foleyflow.data.recipes import edit_mask
    from foleyflow.training.recipes.localise import as_removal

    replace = {"instruction": "Swap the siren for rain", "edit_spans": [[0, 3200], [8000, 9600]], "edit_mask": np.ones(1024, bool),
               "source": np.zeros(4)}
    asked = as_removal(replace)
    assert asked["instruction"] == "Remove the siren" and asked["edit_spans"] == [[0, 3200]] and "edit_mask" not in asked
    assert asked["source"] is replace["source"] and replace["instruction"] == "Swap the siren for rain"  # the item itself is left alone
    remove = {"instruction": "Remove the bell", "edit_spans": [[0, 160]], "edit_mask": np.ones(1024, bool)}
    assert as_removal(remove) is remove

    recipe = _recipe(tmp_path, query="removed")
    items = [{**replace, "source": torch.zeros(4), "target": torch.zeros(4)}, {**remove, "source": torch.zeros(4), "target": torch.zeros(4)}]
    batch = recipe.collate(items)
    assert batch["instruction"] == ["Remove the siren", "Remove the bell"]
    assert torch.equal(batch["edit_mask"][0], torch.from_numpy(edit_mask([[0, 3200]])))
    assert bool(batch["edit_mask"][1].all())
    assert _recipe(tmp_path).collate(items)["instruction"][0] == "Swap the siren for rain"  # the default asks as it is
    folder = recipe.export(recipe.build(), tmp_path / "out", "card")
    assert Editor.from_pretrained(folder).config.localiser_query == "removed"
    with pytest.raises(InputError, match="recipe_options.query"):
        _recipe(tmp_path, query="where")


def test_an_edit_the_localiser_marks_nothing_of_skips_the_sampling_and_returns_the_same_audio(tmp_path):
    from foleyflow.pipelines.edit_bench import SOURCE_ITSELF, run_edit_bench

    recipe = _recipe(tmp_path)
    editor = Editor.from_pretrained(recipe.export(recipe.build(), tmp_path / "out", "card"))
    item = ToneTriplets("val")[0]
    audio = item["source"].numpy()
    editor.config = dataclasses.replace(editor.config, mask_threshold=1.0)  # a probability below 1 everywhere: no frame marked
    for composite in ("every-step+spectral", "every-step+audio", "end", "spectral"):
        skipped = editor.edit(audio, "Add a tone", mask="localiser", composite=composite)
        assert skipped.untouched and skipped.nfe == 0, composite
        run = editor.sample_clip(audio, "Add a tone", methods=("localiser",), keep="localiser" if composite.startswith("every-step") else None)
        assert run.nfe > 0  # the same clip sampled in full ...
        assert np.array_equal(editor.finish(run, run.masks["localiser"], composite), skipped.audio), composite  # ... ends the same
    assert np.array_equal(editor.edit(audio, "Add a tone", mask="localiser", composite="spectral").audio, audio)
    # every-step alone ends on the source's path at t = 1 (sigma_min from the source): it still samples
    assert editor.edit(audio, "Add a tone", mask="localiser", composite="every-step").nfe > 0
    editor.config = dataclasses.replace(editor.config, mask_threshold=0.0)  # every frame marked: sampled as before
    assert editor.edit(audio, "Add a tone", mask="localiser", composite="every-step+spectral").nfe > 0

    editor.config = dataclasses.replace(editor.config, mask_threshold=1.0)
    items = [{"task": "add", "source": audio, "target": item["target"].numpy(), "instruction": "Add a tone", "edit_spans": [[0, 256]]}]
    report = run_edit_bench(editor, items, t_starts=(), resamples=10, methods=("localiser",), composites=("every-step+spectral", "spectral"))
    rows = report["tasks"]["add"]["methods"]
    for name in ("localiser + every-step+spectral", "localiser + spectral"):
        assert rows[name]["nfe"] == rows[name]["mean_nfe"] == 0 and rows[name]["l1"]["value"] == rows[SOURCE_ITSELF]["l1"]["value"], name
    # Two items, a threshold between their localiser's highest probabilities: one sampled, one not.
    sources = [ToneTriplets("val")[i]["source"].numpy() for i in (0, 1)]
    highest = []
    for source in sources:
        x_source = editor.codec.encode(torch.from_numpy(source)[None])
        highest.append(float(editor.localise(x_source, "Add a tone", editor.encode_instruction("Add a tone", 1)[0]).max()))
    assert highest[0] != highest[1]
    editor.config = dataclasses.replace(editor.config, mask_threshold=float(np.mean(highest)))
    mixed = [dict(items[0], source=source) for source in sources]
    row = run_edit_bench(editor, mixed, t_starts=(), resamples=10, methods=("localiser",), composites=("spectral",))["tasks"]["add"]["methods"]["localiser + spectral"]
    assert row["nfe"] == editor.config.steps and row["mean_nfe"] == editor.config.steps / 2
    # beside the oracle (or the plain recipe) the run is sampled: those rows use what it samples
    report = run_edit_bench(editor, items, t_starts=(), resamples=10, methods=("localiser", "oracle"), composites=("spectral",))
    assert report["tasks"]["add"]["methods"]["oracle + spectral"]["nfe"] > 0
