"""Public checkpoint formats: files written with the published names and shapes (random
weights) load through foleyflow and give the source module's outputs."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from foleyflow.errors import InputError
from foleyflow.models import interop
from foleyflow.models.codec import Codec
from foleyflow.models.vae import build_vae, decode, encode
from foleyflow.models.vocoder import vocode

HIFIGAN_16K_64 = {
    "resblock": "1",
    "upsample_rates": [5, 4, 2, 2, 2],
    "upsample_kernel_sizes": [16, 16, 8, 4, 4],
    "upsample_initial_channel": 1024,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "num_mels": 64,
    "sampling_rate": 16000,
}
LDM_DDCONFIG = {"double_z": True, "z_channels": 8, "resolution": 256, "in_channels": 1, "out_ch": 1, "ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


# ---------------------------------------------------------------- reference HiFi-GAN (original names)
class ReferenceResBlock(nn.Module):
    def __init__(self, channels, kernel, dilations):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2) for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in dilations)

    def forward(self, x):
        for first, second in zip(self.convs1, self.convs2):
            x = x + second(F.leaky_relu(first(F.leaky_relu(x, 0.1)), 0.1))
        return x


class ReferenceHifiGan(nn.Module):
    """The original HiFi-GAN generator layout: conv_pre, ups.N, resblocks.N.convs1/2, conv_post."""

    def __init__(self, h):
        super().__init__()
        width = h["upsample_initial_channel"]
        self.kernels = len(h["resblock_kernel_sizes"])
        self.conv_pre = nn.Conv1d(h["num_mels"], width, 7, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(width // 2**i, width // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"]))
        )
        self.resblocks = nn.ModuleList(
            ReferenceResBlock(width // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"])
        )
        self.conv_post = nn.Conv1d(width // 2 ** len(self.ups), 1, 7, padding=3)

    def forward(self, mel):  # (batch, mels, frames)
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            x = sum(self.resblocks[i * self.kernels + j](x) for j in range(self.kernels)) / self.kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x))).squeeze(1)

    def with_weight_norm(self):
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                torch.nn.utils.weight_norm(module)
        return self


# ---------------------------------------------------------------- LDM names, written from the LDM layout
def diffusers_key_to_ldm(key: str, levels: int) -> str:
    parts = key.split(".")
    side = parts[0]
    if parts[1] == "down_blocks":
        level, kind = parts[2], parts[3]
        rest = ".".join(parts[5:]) if kind == "resnets" else ".".join(parts[5:])
        if kind == "resnets":
            return f"{side}.down.{level}.block.{parts[4]}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        return f"{side}.down.{level}.downsample.{rest}"
    if parts[1] == "up_blocks":
        level, kind = levels - 1 - int(parts[2]), parts[3]
        rest = ".".join(parts[5:])
        if kind == "resnets":
            return f"{side}.up.{level}.block.{parts[4]}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        return f"{side}.up.{level}.upsample.{rest}"
    if parts[1] == "mid_block":
        if parts[2] == "resnets":
            return f"{side}.mid.block_{int(parts[3]) + 1}." + ".".join(parts[4:])
        names = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}
        leaf = parts[-1]
        return f"{side}.mid.attn_1.{names[parts[4]]}.{leaf}"
    if parts[1] == "conv_norm_out":
        return f"{side}.norm_out.{parts[2]}"
    return key


def ldm_state_of(vae) -> dict[str, torch.Tensor]:
    state = {}
    for key, value in vae.state_dict().items():
        ldm_key = diffusers_key_to_ldm(key, len(vae.config.block_out_channels))
        if ".attn_1." in ldm_key and ldm_key.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]
        state[ldm_key] = value.clone()
    return state


@pytest.fixture(scope="module")
def paper_vae():
    torch.manual_seed(0)
    return build_vae("paper").eval()


@pytest.fixture(scope="module")
def paper_hifigan():
    torch.manual_seed(1)
    return ReferenceHifiGan(HIFIGAN_16K_64).eval()


@pytest.fixture(scope="module")
def mel():
    torch.manual_seed(2)
    return torch.randn(1, 1, 16, 64) * 2 - 5


def assert_same_vae(loaded, source, mel):
    with torch.no_grad():
        torch.testing.assert_close(encode(loaded, mel), encode(source, mel), rtol=1e-5, atol=1e-5)
        latents = encode(source, mel)
        torch.testing.assert_close(decode(loaded, latents), decode(source, latents), rtol=1e-5, atol=1e-5)


def assert_same_vocoder(loaded, reference, mel):
    with torch.no_grad():
        expected = reference(mel[:, 0].transpose(1, 2))[..., : mel.shape[2] * 160]
        torch.testing.assert_close(vocode(loaded, mel), expected, rtol=1e-4, atol=1e-5)


def test_ldm_state_has_published_names_and_shapes(paper_vae):
    state = ldm_state_of(paper_vae)
    published = {
        "encoder.conv_in.weight": (128, 1, 3, 3),
        "encoder.down.0.block.0.conv1.weight": (128, 128, 3, 3),
        "encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
        "encoder.down.0.downsample.conv.weight": (128, 128, 3, 3),
        "encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        "encoder.conv_out.weight": (16, 512, 3, 3),
        "quant_conv.weight": (16, 16, 1, 1),
        "post_quant_conv.weight": (8, 8, 1, 1),
        "decoder.conv_in.weight": (512, 8, 3, 3),
        "decoder.up.2.block.2.conv2.weight": (512, 512, 3, 3),
        "decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
        "decoder.up.1.upsample.conv.weight": (256, 256, 3, 3),
        "decoder.norm_out.weight": (128,),
    }
    for key, shape in published.items():
        assert tuple(state[key].shape) == shape, key


def test_audioldm_ckpt_loads_vae_and_vocoder(tmp_path, paper_vae, paper_hifigan, mel):
    state = {f"first_stage_model.{k}": v for k, v in ldm_state_of(paper_vae).items()}
    state.update({f"first_stage_model.vocoder.{k}": v for k, v in paper_hifigan.state_dict().items()})
    state["scale_factor"] = torch.tensor(0.5)
    state["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(4, 8, 3, 3)  # other sub-models are ignored
    path = tmp_path / "audioldm-s-full.ckpt"
    torch.save({"state_dict": state, "global_step": 1}, path)

    vae, vocoder = interop.load_audioldm_ckpt(path)
    assert vae.config.scaling_factor == 0.5
    paper_vae.register_to_config(scaling_factor=0.5)
    assert_same_vae(vae, paper_vae, mel)
    assert_same_vocoder(vocoder, paper_hifigan, mel)
    assert vocoder.config.normalize_before is False


def test_tango_folder_with_vocoder_inside_vae(tmp_path, paper_vae, paper_hifigan, mel):
    state = ldm_state_of(paper_vae)
    state.update({f"vocoder.{k}": v for k, v in paper_hifigan.state_dict().items()})
    torch.save(state, tmp_path / "pytorch_model_vae.bin")
    (tmp_path / "vae_config.json").write_text(json.dumps({"image_key": "fbank", "subband": 1, "embed_dim": 8, "time_shuffle": 1, "ddconfig": LDM_DDCONFIG}))

    codec = Codec.from_pretrained(tmp_path)
    assert codec.vae.config.scaling_factor == pytest.approx(0.9227914214134216)
    paper_vae.register_to_config(scaling_factor=0.9227914214134216)
    assert_same_vae(codec.vae, paper_vae, mel)
    assert_same_vocoder(codec.vocoder, paper_hifigan, mel)


def test_tango_separate_weight_normed_vocoder(tmp_path, paper_vae, mel):
    small = dict(HIFIGAN_16K_64, upsample_initial_channel=32)
    torch.manual_seed(3)
    reference = ReferenceHifiGan(small).with_weight_norm().eval()
    assert any(k.endswith("weight_g") for k in reference.state_dict())
    torch.save(ldm_state_of(paper_vae), tmp_path / "pytorch_model_vae.bin")
    (tmp_path / "vae_config.json").write_text(json.dumps({"embed_dim": 8, "ddconfig": LDM_DDCONFIG, "scale_factor": 1.5}))
    torch.save({"generator": reference.state_dict()}, tmp_path / "pytorch_model_vocoder.bin")
    (tmp_path / "vocoder_config.json").write_text(json.dumps(small))

    vae, vocoder = interop.load_tango_folder(tmp_path)
    assert vae.config.scaling_factor == 1.5
    assert vocoder.config.upsample_initial_channel == 32
    assert_same_vocoder(vocoder, reference, mel)


def test_diffusers_folder(tmp_path, paper_vae, mel):
    from foleyflow.models.vocoder import build_vocoder

    torch.manual_seed(4)
    source_vocoder = build_vocoder("paper", upsample_initial_channel=32).eval()
    paper_vae.save_pretrained(tmp_path / "vae")
    source_vocoder.save_pretrained(tmp_path / "vocoder")

    codec = Codec.from_pretrained(tmp_path)
    assert_same_vae(codec.vae, paper_vae, mel)
    with torch.no_grad():
        torch.testing.assert_close(vocode(codec.vocoder, mel), vocode(source_vocoder, mel))


def test_deprecated_diffusers_attention_names_are_upgraded(paper_vae):
    state = paper_vae.state_dict()
    old = {k.replace("to_q", "query").replace("to_out.0", "proj_attn"): v for k, v in state.items()}
    assert "encoder.mid_block.attentions.0.query.weight" in old
    assert set(interop.upgrade_deprecated_attention_names(old)) == set(state)


def test_unknown_and_missing_keys_are_named(tmp_path, paper_vae):
    state = {f"first_stage_model.{k}": v for k, v in ldm_state_of(paper_vae).items()}
    del state["first_stage_model.decoder.conv_out.bias"]
    state["first_stage_model.encoder.extra_layer.weight"] = torch.zeros(1)
    path = tmp_path / "broken.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(InputError, match=r"missing 1 keys \(decoder.conv_out.bias\).*unexpected 1 keys \(encoder.extra_layer.weight\)"):
        interop.load_audioldm_ckpt(path)


def test_not_a_checkpoint_is_input_error(tmp_path):
    with pytest.raises(InputError):
        Codec.from_pretrained(tmp_path)
    path = tmp_path / "empty.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}}, path)
    with pytest.raises(InputError, match="first_stage_model"):
        interop.load_audioldm_ckpt(path)
