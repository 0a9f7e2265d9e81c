import torch

from foleyflow.diffusion.denoiser import Denoiser
from foleyflow.diffusion.guidance import ClassifierFreeGuidance, ConcatSource
from foleyflow.diffusion.schedule import DDPMSchedule


class Recorder:
    """A toy network, linear in its condition, that records how it was called."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, time, context, **kwargs):
        self.calls.append({"x": x, "time": time, "context": context, **kwargs})
        return 2.0 * x + context.mean(dim=(1, 2)).reshape(-1, *([1] * (x.ndim - 1)))


def _inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 4, 5, generator=g)
    return x, torch.full((3,), 0.5), torch.randn(3, 7, 6, generator=g)


def test_tango_guidance_formula_in_one_batched_pass():
    x, t, context = _inputs()
    empty = torch.zeros(3, 7, 6)
    net = Recorder()
    guided = ClassifierFreeGuidance(net, scale=3.0)(x, t, cond={"context": context}, uncond={"context": empty})
    expected = 3.0 * Recorder()(x, t, context) + (1 - 3.0) * Recorder()(x, t, empty)
    torch.testing.assert_close(guided, expected)
    assert len(net.calls) == 1 and net.calls[0]["x"].shape[0] == 6


def test_guidance_with_unequal_condition_shapes_runs_two_passes():
    x, t, context = _inputs()
    empty = torch.randn(3, 2, 6)  # a shorter empty prompt
    net = Recorder()
    guided = ClassifierFreeGuidance(net, scale=2.5)(x, t, cond={"context": context}, uncond={"context": empty})
    expected = 2.5 * Recorder()(x, t, context) - 1.5 * Recorder()(x, t, empty)
    torch.testing.assert_close(guided, expected)
    assert len(net.calls) == 2


def test_empty_prompt_row_broadcasts_to_the_batch():
    x, t, context = _inputs()
    empty = torch.randn(1, 7, 6)
    guided = ClassifierFreeGuidance(Recorder(), scale=3.0)(x, t, cond={"context": context}, uncond={"context": empty})
    expected = 3.0 * Recorder()(x, t, context) - 2.0 * Recorder()(x, t, empty.expand(3, 7, 6))
    torch.testing.assert_close(guided, expected)


def test_scale_one_is_the_conditional_model_alone():
    x, t, context = _inputs()
    net = Recorder()
    out = ClassifierFreeGuidance(net, scale=1.0)(x, t, cond={"context": context}, uncond={"context": torch.zeros_like(context)})
    torch.testing.assert_close(out, Recorder()(x, t, context))
    assert len(net.calls) == 1


def test_both_guidance_branches_see_the_source_latent():
    x, t, context = _inputs()
    source = torch.randn(3, 2, 4, 5)
    net = Recorder()
    velocity = ClassifierFreeGuidance(ConcatSource(net), scale=2.0)
    velocity(x, t, cond={"context": context}, uncond={"context": torch.zeros_like(context)}, source=source)
    seen = net.calls[0]["x"]
    assert seen.shape == (6, 4, 4, 5)  # both branches, x_t (+) x_T on channels
    torch.testing.assert_close(seen[:3, 2:], source)
    torch.testing.assert_close(seen[3:, 2:], source)
    torch.testing.assert_close(seen[:3, :2], x)


def test_denoiser_feeds_the_fractional_index_and_returns_x0():
    schedule = DDPMSchedule()
    g = torch.Generator().manual_seed(3)
    z0, eps = torch.randn(2, 8, 4, 4, generator=g), torch.randn(2, 8, 4, 4, generator=g)
    s = torch.tensor([0.25, 0.7])
    z_s = schedule.add_noise(z0, eps, s)
    seen = {}

    def oracle(z, index):
        seen["index"] = index
        return eps

    x0 = Denoiser(oracle, schedule, "epsilon")(z_s, s)
    torch.testing.assert_close(x0, z0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(seen["index"], torch.tensor([249.0, 699.0]))


def test_unet_adapter_scales_time_and_passes_the_context():
    from diffusers import UNet2DConditionModel

    from foleyflow.diffusion.networks import UNetNetwork

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=2, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=6, attention_head_dim=2, norm_num_groups=4,
    ).eval()
    x, t, context = torch.randn(2, 4, 8, 8), torch.tensor([0.25, 0.5]), torch.randn(2, 3, 6)
    with torch.no_grad():
        out = UNetNetwork(unet, time_scale=1000)(x, t, context)
        expected = unet(x, t * 1000, encoder_hidden_states=context).sample
    torch.testing.assert_close(out, expected)
    assert out.shape == (2, 2, 8, 8)
