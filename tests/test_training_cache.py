"""The feature cache is keyed by content and encoder: any change is a miss, never a stale hit."""

import numpy as np
import pytest
import soundfile as sf
import torch

from foleyflow.errors import InputError
from foleyflow.training.cache import CachedFeatures, FeatureCache, hash_file, hash_module, hash_parts, hash_text


class CountingEncoder(torch.nn.Module):
    """A tiny frozen 'VAE' that counts how many inputs it encoded."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv1d(1, 2, 5, stride=4)
        self.calls = 0

    def encode_batch(self, waveforms):
        self.calls += len(waveforms)
        return [{"latent": self.conv(torch.as_tensor(w)[None, None])[0]} for w in waveforms]


def _clip(folder, name, seed):
    path = folder / name
    sf.write(path, np.random.default_rng(seed).standard_normal(800).astype("float32") * 0.1, 16000)
    return path


def _items(paths):
    return [(hash_file(path), sf.read(path, dtype="float32")[0]) for path in paths]


def test_module_hash_follows_weights_and_settings():
    first, same, other = CountingEncoder(0), CountingEncoder(0), CountingEncoder(1)
    assert hash_module(first) == hash_module(same)
    assert hash_module(first) != hash_module(other)
    assert hash_module(first, {"sample_rate": 16000}) != hash_module(first, {"sample_rate": 22050})
    with torch.no_grad():
        same.conv.bias[0] += 1e-6
    assert hash_module(first) != hash_module(same)


def test_fill_encodes_once_and_training_reads_the_cache(tmp_path):
    cache, encoder = FeatureCache(tmp_path / "cache"), CountingEncoder()
    paths = [_clip(tmp_path, f"{i}.wav", i) for i in range(3)]
    key = hash_module(encoder)
    items = _items(paths) + _items(paths[:1])  # a duplicate is encoded once
    assert cache.fill("latent", key, items, encoder.encode_batch, batch_size=2) == 3
    assert cache.fill("latent", key, items, encoder.encode_batch) == 0
    assert encoder.calls == 3
    dataset = CachedFeatures(cache, {"latent": key}, [{"audio": ("latent", h)} for h, _ in items[:3]], [{"caption": f"c{i}"} for i in range(3)])
    item = dataset[1]
    expected = encoder.encode_batch([items[1][1]])[0]["latent"]
    assert item["caption"] == "c1" and torch.equal(item["audio"]["latent"], expected.detach())


def test_changing_the_audio_or_the_model_invalidates_the_entry(tmp_path):
    cache, encoder = FeatureCache(tmp_path / "cache"), CountingEncoder()
    path = _clip(tmp_path, "a.wav", 0)
    key = hash_module(encoder)
    cache.fill("latent", key, _items([path]), encoder.encode_batch)
    old = cache.load("latent", key, hash_file(path))["latent"]

    _clip(tmp_path, "a.wav", 7)  # the same file name, new audio
    assert cache.fill("latent", key, _items([path]), encoder.encode_batch) == 1
    assert not torch.equal(cache.load("latent", key, hash_file(path))["latent"], old)

    with torch.no_grad():
        encoder.conv.weight.mul_(2)  # the model changed: every entry is a miss
    new_key = hash_module(encoder)
    assert new_key != key
    assert cache.get("latent", new_key, hash_file(path)) is None
    assert cache.fill("latent", new_key, _items([path]), encoder.encode_batch) == 1
    torch.testing.assert_close(cache.load("latent", new_key, hash_file(path))["latent"], encoder.encode_batch([sf.read(path, dtype="float32")[0]])[0]["latent"].detach())


def test_a_corrupt_entry_is_recomputed_and_a_missing_one_is_an_input_error(tmp_path):
    cache, encoder = FeatureCache(tmp_path / "cache"), CountingEncoder()
    path = _clip(tmp_path, "a.wav", 0)
    key, content = hash_module(encoder), hash_file(path)
    with pytest.raises(InputError, match="fill the cache first"):
        cache.load("latent", key, content)
    cache.fill("latent", key, _items([path]), encoder.encode_batch)
    cache.path("latent", key, content).write_bytes(b"\x00garbage")
    assert cache.get("latent", key, content) is None and not cache.has("latent", key, content)
    assert cache.fill("latent", key, _items([path]), encoder.encode_batch) == 1


def test_text_and_mixture_hashes_are_content_hashes():
    assert hash_text("rain falls") == hash_text("rain falls") != hash_text("rain falls ")
    assert hash_parts("a", "b") != hash_parts("b", "a") and hash_parts("ab") != hash_parts("a", "b")


def test_latent_encoder_hash_ignores_the_decoder_and_vocoder_only():
    """Fine-tuning the decoder or the vocoder keeps cached latents; the encoder, its config or the mel settings do not."""
    import dataclasses

    from foleyflow.models.codec import Codec
    from foleyflow.models.vae import build_vae
    from foleyflow.models.vocoder import build_vocoder
    from foleyflow.training.cache import hash_latent_encoder

    torch.manual_seed(0)
    tiny = dict(block_out_channels=[8, 8, 8], norm_num_groups=4)
    codec = Codec(build_vae("cpu", **tiny), build_vocoder("cpu", upsample_initial_channel=32))
    key = hash_latent_encoder(codec, {"prep": "tango"})
    with torch.no_grad():
        codec.vae.decoder.conv_out.weight.add_(1.0)
        codec.vae.post_quant_conv.weight.add_(1.0)
        next(codec.vocoder.parameters()).add_(1.0)
    assert hash_latent_encoder(codec, {"prep": "tango"}) == key
    assert hash_latent_encoder(codec, {"prep": "other"}) != key
    codec.mel_config = dataclasses.replace(codec.mel_config, clamp_min=1e-6)
    assert hash_latent_encoder(codec, {"prep": "tango"}) != key
    codec.mel_config = dataclasses.replace(codec.mel_config, clamp_min=1e-5)
    assert hash_latent_encoder(codec, {"prep": "tango"}) == key
    with torch.no_grad():
        codec.vae.quant_conv.weight.add_(1.0)
    assert hash_latent_encoder(codec, {"prep": "tango"}) != key
