import json
import pickle

import pytest
import torch

from foleyflow.errors import InputError, preview
from foleyflow.models import checkpoint
from foleyflow.models.checkpoint import (
    check_keys,
    load_config,
    load_legacy_state_dict,
    load_weights,
    read_json,
    resolve_model_dir,
    save_model_folder,
)


def _state():
    return {"layer.weight": torch.randn(3, 4), "layer.bias": torch.randn(3), "steps": torch.tensor([7])}


def test_model_folder_round_trip(tmp_path):
    state = _state()
    folder = save_model_folder(tmp_path / "m", state, {"_class_name": "Toy", "width": 4}, card="# Toy\n")
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    assert load_config(folder) == {"_class_name": "Toy", "width": 4}
    loaded = load_weights(folder)
    assert loaded.keys() == state.keys()
    for key in state:
        assert torch.equal(loaded[key], state[key])


def test_fp16_storage_halves_floats_and_loads_back_as_float32(tmp_path):
    state = _state()
    folder = save_model_folder(tmp_path / "m", state, {}, dtype=torch.float16)
    stored = load_weights(folder, dtype=None)
    assert stored["layer.weight"].dtype == torch.float16 and stored["steps"].dtype == torch.int64
    assert load_weights(folder)["layer.weight"].dtype == torch.float32
    torch.testing.assert_close(load_weights(folder)["layer.weight"], state["layer.weight"], atol=1e-3, rtol=1e-3)


def test_default_resolves_to_shipped_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "PRETRAINED_ROOT", tmp_path)
    with pytest.raises(InputError, match="no default vae model"):
        resolve_model_dir("default", "vae")
    save_model_folder(tmp_path / "vae", _state(), {"_class_name": "Toy"})
    assert resolve_model_dir("default", "vae") == tmp_path / "vae"
    assert set(checkpoint.list_shipped_models()) == {"vae"}


def test_other_names_are_folders(tmp_path):
    with pytest.raises(InputError, match="no such model folder"):
        resolve_model_dir(tmp_path / "missing", "vae")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="config.json is missing"):
        resolve_model_dir(tmp_path / "empty", "vae")


def test_bad_config_json_is_one_line_input_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_config(tmp_path)


def test_corrupt_weights_are_input_error(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable safetensors"):
        load_weights(tmp_path)
    with pytest.raises(InputError, match="not a readable safetensors"):  # the public checkpoints' reader too
        load_legacy_state_dict(tmp_path / "model.safetensors")


def test_legacy_checkpoint_unwraps_lightning_state_dict(tmp_path):
    state = _state()
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "model.ckpt")
    loaded = load_legacy_state_dict(tmp_path / "model.ckpt")
    assert loaded.keys() == state.keys()


class _Exploit:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_legacy_checkpoint_never_runs_pickled_code(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"weight": _Exploit()}, handle)
    with pytest.raises(InputError, match="cannot be read safely"):
        load_legacy_state_dict(path)
    assert "unpickled code ran" not in capsys.readouterr().out


def test_check_keys_names_missing_and_unexpected():
    with pytest.raises(InputError) as error:
        check_keys({"a", "b", "c"}, {"a", "z"}, "ckpt")
    message = str(error.value)
    assert "missing 2 keys (b, c)" in message and "unexpected 1 keys (z)" in message
    check_keys({"a"}, {"a"}, "ckpt")  # equal sets pass


def test_error_messages_preview_long_name_lists():
    assert preview(list("abcdefg")) == "a, b, c, d, e, ... 2 more"
    assert preview(["a", "b"]) == "a, b"
    assert preview(list("abc"), limit=2) == "a, b, ... 1 more"


def test_read_json_names_the_bad_file(tmp_path):
    (tmp_path / "vae_config.json").write_text('{"a": 1,}')
    with pytest.raises(InputError, match="vae_config.json: not valid JSON"):
        read_json(tmp_path / "vae_config.json")
    (tmp_path / "vocoder_config.json").write_text('{"upsample_rates": [5, 4, 2, 2, 2]}')
    assert read_json(tmp_path / "vocoder_config.json") == {"upsample_rates": [5, 4, 2, 2, 2]}
    with pytest.raises(InputError, match="config.json: missing"):
        read_json(tmp_path / "config.json")
