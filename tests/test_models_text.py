"""Text encoders: the (token states, mask) interface, the offline MiniLM, a T5 folder, LoRA."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import T5Config, T5EncoderModel

from foleyflow.errors import InputError
from foleyflow.models.text import TextEncoder, load_text_encoder, save_text_encoder

WORDS = ["<pad>", "</s>", "<unk>", "a", "dog", "barks", "add", "rain", "remove", "the", "beeps"]


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder("minilm")


@pytest.fixture
def t5_folder(tmp_path):
    """A tiny random T5 in the transformers folder layout, with a word-level tokenizer."""
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(WORDS), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(tmp_path)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}))
    return tmp_path


def test_minilm_states_and_mask(minilm):
    states, mask = minilm.encode(["a dog barks in the rain", ""])
    assert states.shape[0] == 2 and states.shape[2] == 384 == minilm.hidden_size
    assert mask.shape == states.shape[:2]
    assert mask[0].sum() > mask[1].sum() and mask[1, 0] == 1  # "" keeps [CLS] [SEP] only
    assert not any(p.requires_grad for p in minilm.parameters())


def test_t5_folder_matches_the_transformers_module(t5_folder):
    encoder = TextEncoder(t5_folder)
    states, mask = encoder.encode(["add a dog", "remove the beeps"])
    reference = T5EncoderModel.from_pretrained(str(t5_folder)).eval()
    tokens = encoder.tokenizer(["add a dog", "remove the beeps"], padding=True, return_tensors="pt")
    expected = reference(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
    assert tokens["input_ids"][1].tolist()[:3] == [8, 9, 10]
    torch.testing.assert_close(states, expected)
    assert states.shape[-1] == 32 == encoder.hidden_size and encoder.family == "t5"


def test_lora_trains_only_the_adapters(t5_folder):
    encoder = TextEncoder(t5_folder)
    encoder.add_lora(rank=4, alpha=8, target_modules=["q", "v"])
    trainable = {name for name, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    # peft starts lora_B at zero: the adapters do not change the output until trained.
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if "lora_B" in name:
                p.normal_()
    states, mask = encoder.encode(["a dog barks"])
    (states * mask[..., None]).pow(2).mean().backward()
    for name, p in encoder.named_parameters():
        if "lora_" in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_lora_adapters_save_and_load(tmp_path, t5_folder):
    encoder = TextEncoder(t5_folder)
    encoder.add_lora(rank=2, alpha=4)
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if "lora_" in name:
                p.normal_()
    save_text_encoder(encoder, tmp_path / "text")
    loaded = load_text_encoder(tmp_path / "text")
    assert loaded.lora == {"rank": 2, "alpha": 4, "target_modules": ["q", "k", "v", "o"], "dropout": 0.0}
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(["add rain"])[0], encoder.encode(["add rain"])[0])
        base = TextEncoder(t5_folder).encode(["add rain"])[0]
        assert not torch.allclose(base, encoder.encode(["add rain"])[0])


def test_lora_errors(t5_folder):
    encoder = TextEncoder(t5_folder)
    with pytest.raises(InputError, match="no LoRA adapters"):
        encoder.load_lora_state_dict({})
    with pytest.raises(InputError, match="not found"):
        encoder.add_lora(target_modules=["no_such_layer"])
    encoder = TextEncoder(t5_folder)
    encoder.add_lora(rank=2)
    state = encoder.lora_state_dict()
    state.pop(next(iter(state)))
    with pytest.raises(InputError, match="missing 1 keys"):
        encoder.load_lora_state_dict(state)


def test_bad_inputs(tmp_path, minilm):
    with pytest.raises(InputError, match="not a transformers model folder"):
        TextEncoder(tmp_path)
    with pytest.raises(InputError, match="list of strings"):
        minilm.encode("a dog")
