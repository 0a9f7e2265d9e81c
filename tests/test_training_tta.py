"""The Tango recipe: cached features, text dropout, mixing augmentation, training and export."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from foleyflow.audio.mel import tango_waveform_prep
from foleyflow.audio.mixing import pressure_level_mix
from foleyflow.errors import InputError
from foleyflow.training.cache import FeatureCache
from foleyflow.training.recipes.tta import TTARecipe, mixture_pairs, pad_states, read_manifest
from training_helpers import CAPTIONS, make_tta_inputs, train_in_process


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_tta_inputs(tmp_path_factory.mktemp("tta"))


def _recipe(inputs, **options):
    return TTARecipe({**inputs, **options})


def test_training_reads_the_cache_and_matches_on_the_fly_encoding(inputs, tmp_path):
    recipe = _recipe(inputs, cache_dir=str(tmp_path / "cache"), mixtures=2)
    cached = recipe.dataset("train")
    assert len(cached) == 6  # four clips and two mixtures
    entries = list((tmp_path / "cache").rglob("*.safetensors"))
    assert len(entries) == 6 + 6  # six latents, six distinct captions
    # A second run encodes nothing: every latent and text state comes from the cache.
    recipe.encode_audio = recipe.encode_text = lambda *_: pytest.fail("encoder called despite a full cache")
    again = recipe.dataset("train")
    on_the_fly = _recipe(inputs, cache=False, mixtures=2).dataset("train")
    collate = _recipe(inputs, cache=False).collate
    from_cache, live = collate([again[i] for i in range(6)]), collate([on_the_fly[i] for i in range(6)])
    torch.testing.assert_close(from_cache["latent"], live["latent"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(from_cache["text_states"], live["text_states"], rtol=1e-4, atol=1e-5)
    assert torch.equal(from_cache["text_mask"], live["text_mask"])
    assert from_cache["latent"].shape == (6, 8, 8, 16)


def test_mixtures_are_pressure_level_mixes_with_joined_captions(inputs):
    recipe = _recipe(inputs, cache=False, mixtures=3)
    data = recipe.dataset("train")
    first, second = data.items[4][1], data.items[4][2]
    assert data.items[4][0] == "mix"
    assert data[4]["caption"] == f"{CAPTIONS[first]} and {CAPTIONS[second]}"
    prepared = [data.source._prepared(index) for index in (first, second)]
    expected = tango_waveform_prep(pressure_level_mix(*prepared), recipe.options.num_samples)
    np.testing.assert_allclose(data[4]["waveform"].numpy(), expected)
    pairs = mixture_pairs(6, 4, seed=0)
    assert len({pair[1:] for pair in pairs}) == 6 and all(a < b for _, a, b in pairs)
    with pytest.raises(InputError, match="make only 6 pairs"):
        mixture_pairs(7, 4, seed=0)


def test_text_dropout_zeroes_the_condition(inputs):
    always, never = _recipe(inputs, text_dropout=1.0), _recipe(inputs, text_dropout=0.0)
    torch.manual_seed(0)
    unet = always.build()["unet"]
    batch = always.collate([always.dataset("train")[i] for i in range(2)])
    silent = {**batch, "text_states": torch.zeros_like(batch["text_states"])}

    def loss(recipe, data):
        torch.manual_seed(1)  # the same dropout draw, timesteps and noise in every call
        return recipe.losses({"unet": unet}, data, "main", 0)[0].item()

    assert loss(always, batch) == loss(never, silent)
    assert loss(never, batch) != loss(never, silent)


def test_tta_trains_and_exports_a_generator_folder(inputs, tmp_path):
    from foleyflow.training.config import TrainConfig

    config = TrainConfig.from_dict(
        {
            "recipe": "tta",
            "recipe_options": {**inputs, "mixtures": 2, "prediction": "v"},
            "max_steps": 3,
            "batch_size": 2,
            "val_every": 3,
            "val_batches": 1,
            "checkpoint_every": 3,
            "output_dir": str(tmp_path / "run"),
        }
    )
    result = train_in_process(config)
    assert np.isfinite(result.val_history[-1]["val_loss"])
    folder = result.model_dir
    generator_config = json.loads((folder / "config.json").read_text())
    assert generator_config["_class_name"] == "TangoGenerator" and generator_config["prediction"] == "v"
    assert generator_config["codec"] == "codec" and (folder / "codec" / "vae" / "model.safetensors").is_file()
    assert generator_config["unet"]["cross_attention_dim"] == 384  # MiniLM's width
    card = (folder / "MODEL_CARD.md").read_text()
    assert "optimizer steps: 3" in card and "- train: 6 items (4 clips of split 'train', one item per caption, of which 2 pressure-level mixtures)" in card
    assert "- val: 2 items (2 clips" in card and "v prediction" in card


def test_manifest_errors_and_padding(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"audio": "a.wav"}\n')
    with pytest.raises(InputError, match="bad.jsonl:1"):
        read_manifest(tmp_path / "bad.jsonl")
    with pytest.raises(InputError, match="no such manifest"):
        read_manifest(tmp_path / "missing.jsonl")
    padded, mask = pad_states([torch.ones(2, 3), torch.ones(4, 3)])
    assert padded.shape == (2, 4, 3) and mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]] and padded[0, 2:].abs().sum() == 0


def test_a_corpus_manifest_is_read_by_split_with_every_caption(inputs, tmp_path):
    import shutil

    (tmp_path / "audio").mkdir()
    records = []
    for index, split in enumerate(["train", "train", "val"]):
        shutil.copy(Path(inputs["train_manifest"]).parent / f"clip{index}.wav", tmp_path / "audio" / f"id{index}.wav")
        records.append({"clip_id": f"id{index}", "captions": [f"sound {index}", f"noise {index}"], "split": split, "label": "x"})
    (tmp_path / "clips.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    clips = read_manifest(tmp_path / "clips.jsonl", "train")
    assert [clip.audio.name for clip in clips] == ["id0.wav", "id1.wav"] and clips[1].captions == ("sound 1", "noise 1")
    recipe = _recipe(inputs, train_manifest=str(tmp_path / "clips.jsonl"), val_manifest=str(tmp_path / "clips.jsonl"), cache=False)
    train, val = recipe.dataset("train"), recipe.dataset("val")
    assert [train[i]["caption"] for i in range(len(train))] == ["sound 0", "noise 0", "sound 1", "noise 1"]
    assert [val[i]["caption"] for i in range(len(val))] == ["sound 2", "noise 2"]
    with pytest.raises(InputError, match="no clips of split 'test'"):
        read_manifest(tmp_path / "clips.jsonl", "test")


def test_changing_the_codec_invalidates_cached_latents(inputs, tmp_path):
    from foleyflow.models.codec import Codec
    from foleyflow.models.vae import build_vae

    cache_dir = tmp_path / "cache"
    first = _recipe(inputs, cache_dir=str(cache_dir)).encoder_hashes()["latent"]
    torch.manual_seed(5)
    Codec(build_vae("cpu", block_out_channels=[8, 16, 16], norm_num_groups=4)).save_pretrained(tmp_path / "other")
    assert _recipe(inputs, cache_dir=str(cache_dir), codec=str(tmp_path / "other")).encoder_hashes()["latent"] != first
    assert _recipe(inputs, cache_dir=str(cache_dir), clip_seconds=0.64).encoder_hashes()["latent"] != first
    assert FeatureCache(cache_dir).get("latent", first, "0" * 64) is None


def test_init_from_continues_a_trained_generator_and_refuses_another_model(inputs, tmp_path):
    from foleyflow.generator import load_generator_unet, read_generator_config
    from foleyflow.training.config import TrainConfig

    options = {**inputs, "prediction": "v"}
    config = TrainConfig.from_dict({"recipe": "tta", "recipe_options": options, "max_steps": 2, "batch_size": 2,
                                    "val_every": 2, "val_batches": 1, "checkpoint_every": 2, "output_dir": str(tmp_path / "run")})
    folder = train_in_process(config).model_dir
    trained = load_generator_unet(*read_generator_config(folder)).state_dict()
    torch.manual_seed(123)  # a fresh UNet would differ from the trained one
    continued = _recipe(inputs, prediction="v", init_from=str(folder)).build()["unet"].state_dict()
    assert continued.keys() == trained.keys() and all(torch.equal(continued[k], trained[k]) for k in trained)
    fresh = _recipe(inputs, prediction="v").build()["unet"].state_dict()
    assert not all(torch.equal(fresh[k], trained[k]) for k in trained)
    with pytest.raises(InputError, match="init_from .*prediction differ"):
        _recipe(inputs, prediction="epsilon", init_from=str(folder)).build()
    with pytest.raises(InputError, match="init_from .*unet differ"):
        _recipe(inputs, prediction="v", init_from=str(folder), unet_overrides={**inputs.get("unet_overrides", {}), "layers_per_block": 2}).build()


def test_a_continued_generator_keeps_its_sampling_settings_and_a_student_is_refused(inputs, tmp_path):
    from foleyflow.training.config import TrainConfig

    def trained(name, **options):
        config = TrainConfig.from_dict({"recipe": "tta", "recipe_options": {**inputs, "prediction": "v", **options}, "max_steps": 1,
                                        "batch_size": 2, "val_every": 1, "val_batches": 1, "checkpoint_every": 1,
                                        "output_dir": str(tmp_path / name)})
        return train_in_process(config).model_dir

    first = trained("first")
    config_path = first / "config.json"
    measured = {"steps": 25, "cfg": 3.0, "sampler": "ddim"}
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "sampling": measured}))
    continued = trained("continued", init_from=str(first))
    assert json.loads((continued / "config.json").read_text())["sampling"] == measured
    assert "sampling settings kept" in (continued / "MODEL_CARD.md").read_text()
    assert "sampling" not in json.loads((trained("fresh") / "config.json").read_text())
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "distillation": {"steps": 12}}))
    with pytest.raises(InputError, match="a distilled student"):
        _recipe(inputs, prediction="v", init_from=str(first)).build()
