"""UNet presets: shapes for generation (8 channels) and editing (16), paper config, save/load."""

from __future__ import annotations

import pytest
import torch

from foleyflow.errors import InputError
from foleyflow.models.unet import build_unet, load_unet, save_unet, unet_config


@pytest.mark.parametrize("in_channels", [8, 16])
def test_cpu_small_shapes(in_channels):
    torch.manual_seed(0)
    unet = build_unet("cpu-small", in_channels=in_channels).eval()
    with torch.no_grad():
        out = unet(torch.randn(2, in_channels, 32, 16), torch.tensor([3, 500]), encoder_hidden_states=torch.randn(2, 5, 384)).sample
    assert out.shape == (2, 8, 32, 16)


def test_cpu_small_has_no_attention_at_full_resolution():
    config = unet_config("cpu-small")
    assert config["down_block_types"][0] == "DownBlock2D" and config["up_block_types"][-1] == "UpBlock2D"


def test_tango_paper_config_and_size():
    config = unet_config("tango-paper")
    assert config["block_out_channels"] == [320, 640, 1280, 1280]
    assert config["attention_head_dim"] == [5, 10, 20, 20] and config["cross_attention_dim"] == 1024
    with torch.device("meta"):
        unet = build_unet("tango-paper")
    millions = sum(p.numel() for p in unet.parameters()) / 1e6
    assert 850 < millions < 880  # Tango reports 866M


def test_bad_in_channels():
    with pytest.raises(InputError, match="in_channels"):
        unet_config("cpu-small", in_channels=4)
    with pytest.raises(InputError, match="unknown UNet preset"):
        unet_config("huge")


def test_save_and_load_with_extra_tensors(tmp_path):
    torch.manual_seed(1)
    unet = build_unet("cpu-small", in_channels=16).eval()
    extra = {"text_lora.layer.lora_A.weight": torch.randn(2, 4)}
    save_unet(unet, tmp_path / "unet", card="# test\n", extra_tensors=extra)
    loaded, others = load_unet(tmp_path / "unet")
    torch.testing.assert_close(others["text_lora.layer.lora_A.weight"], extra["text_lora.layer.lora_A.weight"])
    x = torch.randn(1, 16, 16, 16)
    context = torch.randn(1, 3, 384)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 10, encoder_hidden_states=context).sample, unet(x, 10, encoder_hidden_states=context).sample)


def test_reversed_time_features_are_the_features_of_reversed_time():
    from foleyflow.models.unet import reversed_time_features

    time_proj = build_unet("cpu-small").time_proj
    t = torch.tensor([0.0, 1.0, 137.5, 500.0, 999.0])
    reflection = reversed_time_features(time_proj, 1000.0)
    assert torch.allclose(time_proj(1000.0 - t).double(), time_proj(t).double() @ reflection.T, atol=1e-4)  # float32 sines of ~1000


def test_an_editor_started_from_a_generator_is_the_generator_on_reversed_time_with_the_source_ignored():
    from foleyflow.models.unet import editor_unet_from_generator

    torch.manual_seed(0)
    generator = build_unet("cpu-small").eval()
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))  # no zero-initialised layer hides a mistake
    editor = editor_unet_from_generator(generator, build_unet("cpu-small", in_channels=16, out_channels=9)).eval()
    x, source, context = torch.randn(2, 8, 16, 16), torch.randn(2, 8, 16, 16), torch.randn(2, 5, 384)
    t = torch.tensor([0.25, 0.8])
    with torch.no_grad():
        expected = -generator(x, 1000.0 * (1 - t), encoder_hidden_states=context).sample
        for other_source in (source, torch.zeros_like(source)):
            output = editor(torch.cat([x, other_source], 1), 1000.0 * t, encoder_hidden_states=context).sample
            assert torch.allclose(output[:, :8], expected, atol=1e-4)
            assert torch.count_nonzero(output[:, 8:]) == 0  # the mask head starts silent
        moved = editor(torch.cat([x, source], 1), 1000.0 * (1 - t), encoder_hidden_states=context).sample[:, :8]
        assert not torch.allclose(moved, expected, atol=1e-2)  # the time really was reversed


def test_an_editor_of_another_configuration_is_refused_from_a_generator():
    from foleyflow.models.unet import editor_unet_from_generator

    with pytest.raises(InputError, match="editor UNet takes 16"):
        editor_unet_from_generator(build_unet("cpu-small"), build_unet("cpu-small"))
    with pytest.raises(InputError, match="not this editor's configuration"):
        editor_unet_from_generator(build_unet("cpu-small"), build_unet("cpu-small", in_channels=16, block_out_channels=[32, 64, 64]))
