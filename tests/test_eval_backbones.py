"""Public backbones: official key names and shapes, loading format-identical checkpoints."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from foleyflow.errors import InputError
from foleyflow.evaluation.backbones import read_state_dict
from foleyflow.evaluation.backbones.panns import Cnn14
from foleyflow.evaluation.backbones.public import PannsBackbone, VggishBackbone
from foleyflow.evaluation.backbones.vggish import VGGish, vggish_examples, vggish_mel_matrix

# Written from the released checkpoints' layouts, independently of the modules under test.
CNN14_16K_SHAPES = {
    "spectrogram_extractor.stft.conv_real.weight": (257, 1, 512),
    "spectrogram_extractor.stft.conv_imag.weight": (257, 1, 512),
    "logmel_extractor.melW": (257, 64),
    "bn0.weight": (64,),
    "bn0.running_var": (64,),
    "conv_block1.conv1.weight": (64, 1, 3, 3),
    "conv_block1.conv2.weight": (64, 64, 3, 3),
    "conv_block1.bn1.running_mean": (64,),
    "conv_block3.conv1.weight": (256, 128, 3, 3),
    "conv_block6.conv2.weight": (2048, 2048, 3, 3),
    "conv_block6.bn2.bias": (2048,),
    "fc1.weight": (2048, 2048),
    "fc1.bias": (2048,),
    "fc_audioset.weight": (527, 2048),
    "fc_audioset.bias": (527,),
}
VGGISH_SHAPES = {
    "features.0.weight": (64, 1, 3, 3),
    "features.3.weight": (128, 64, 3, 3),
    "features.6.weight": (256, 128, 3, 3),
    "features.8.weight": (256, 256, 3, 3),
    "features.11.weight": (512, 256, 3, 3),
    "features.13.weight": (512, 512, 3, 3),
    "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288),
    "embeddings.2.weight": (4096, 4096),
    "embeddings.4.weight": (128, 4096),
    "embeddings.4.bias": (128,),
}
SMALL_CNN14 = dict(channels=(4, 4, 8, 8, 8, 16), classes_num=7)
SMALL_VGGISH = dict(channels=(2, 2, 4, 4, 4, 4), hidden=8, embedding=5)


def _full_size_state(module_class):
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in module_class().state_dict().items()}


def test_full_cnn14_has_the_official_keys_and_shapes():
    shapes = _full_size_state(Cnn14)
    for key, shape in CNN14_16K_SHAPES.items():
        assert shapes[key] == shape, key
    assert {k.split(".")[0] for k in shapes} == {"spectrogram_extractor", "logmel_extractor", "bn0", "fc1", "fc_audioset"} | {
        f"conv_block{i}" for i in range(1, 7)
    }
    assert sum(np.prod(s) for k, s in shapes.items() if "num_batches" not in k and "running" not in k and "extractor" not in k) == pytest.approx(80.75e6, rel=0.01)


def test_full_vggish_has_the_port_keys_and_shapes():
    shapes = _full_size_state(VGGish)
    assert shapes == VGGISH_SHAPES | {k.replace("weight", "bias"): (v[0],) for k, v in VGGISH_SHAPES.items() if k.endswith("weight")}


def _random_state(module):
    generator = torch.Generator().manual_seed(1)
    return {k: (torch.rand(v.shape, generator=generator) + 0.5 if "running_var" in k else torch.randn(v.shape, generator=generator) * 0.1)
            if v.is_floating_point() else v for k, v in module.state_dict().items()}


def test_panns_loads_an_official_format_pth_and_matches_the_module(tmp_path):
    reference = Cnn14(**SMALL_CNN14).eval()
    state = _random_state(reference)
    reference.load_state_dict(state)
    # Released PANNs checkpoints are {"model": state_dict, "iteration": ...}.
    torch.save({"model": state, "iteration": 10}, tmp_path / "Cnn14_16k.pth")
    backbone = PannsBackbone(tmp_path / "Cnn14_16k.pth", **SMALL_CNN14)
    audio = np.random.default_rng(0).normal(size=16_000).astype(np.float32) * 0.1
    features = backbone.features(audio)
    with torch.no_grad():
        expected = reference(torch.from_numpy(audio)[None])
    assert features["embedding"].shape == (16,) and features["logits"].shape == (7,)
    np.testing.assert_allclose(features["logits"], expected["logits"][0].numpy(), atol=1e-5)
    assert (features["embedding"] >= 0).all()  # relu(fc1(...))


def test_panns_refuses_a_checkpoint_with_missing_keys(tmp_path):
    state = Cnn14(**SMALL_CNN14).state_dict()
    del state["fc1.weight"]
    save_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(InputError, match="missing 1 keys .*fc1.weight"):
        PannsBackbone(tmp_path / "bad.safetensors", **SMALL_CNN14)


def test_panns_spectrogram_equals_torch_stft_power():
    model = Cnn14(**SMALL_CNN14)
    audio = torch.randn(1, 4000)
    power = model.spectrogram_extractor(audio)[0, 0]
    expected = torch.stft(audio[0], 512, 160, window=torch.hann_window(512), center=True, pad_mode="reflect", return_complex=True).abs() ** 2
    torch.testing.assert_close(power, expected.T, atol=1e-3, rtol=1e-4)


def test_panns_mel_filters_cover_50_to_8000_hz():
    filters = Cnn14(**SMALL_CNN14).logmel_extractor.melW.numpy()
    frequencies = np.linspace(0, 8000, 257)
    active = frequencies[filters.sum(axis=1) > 0]
    assert 31 <= active.min() <= 63 and active.max() <= 8000


def test_vggish_loads_the_port_checkpoint_and_drops_pca(tmp_path):
    reference = VGGish(**SMALL_VGGISH).eval()
    state = _random_state(reference)
    reference.load_state_dict(state)
    torch.save(state | {"pproc._pca_matrix": torch.zeros(5, 5), "pproc._pca_means": torch.zeros(5, 1)}, tmp_path / "vggish.pth")
    backbone = VggishBackbone(tmp_path / "vggish.pth", **SMALL_VGGISH)
    audio = np.random.default_rng(0).normal(size=3 * 16_000).astype(np.float32) * 0.1
    frames = backbone.features(audio)["frames"]
    assert frames.shape == (3, 5)
    with torch.no_grad():
        expected = reference(torch.from_numpy(vggish_examples(audio)))
    np.testing.assert_allclose(frames, expected.numpy(), atol=1e-5)
    assert (frames < 0).any()  # no final ReLU


def test_vggish_examples_and_mel_bands():
    assert vggish_examples(np.zeros(160_000)).shape == (10, 1, 96, 64)
    assert vggish_examples(np.zeros(100)).shape == (1, 1, 96, 64)  # padded to one example
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(16_000) / 16_000)
    band = vggish_examples(tone)[0, 0].mean(axis=0).argmax()
    centers = np.linspace(1127 * np.log1p(125 / 700), 1127 * np.log1p(7500 / 700), 66)[1:-1]
    assert abs(band - np.abs(centers - 1127 * np.log1p(1000 / 700)).argmin()) <= 1
    assert vggish_mel_matrix()[0].sum() == 0.0


def test_read_state_dict_refuses_pickled_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(InputError, match="weights-only"):
        read_state_dict(tmp_path / "evil.pth")
