"""The compositions docs/diffusion.md shows, run end to end on a tiny seeded UNet."""

import pytest
import torch
from diffusers import UNet2DConditionModel

from foleyflow.diffusion import (
    ClassifierFreeGuidance,
    ConcatSource,
    DDPMSchedule,
    Denoiser,
    DiffusionObjective,
    RectifiedFlowPath,
    UNetNetwork,
    diffusion_times,
    drop_condition,
    flow_matching_loss,
    flow_times,
    get_sampler,
    get_solver,
    initial_noise,
    progressive_distillation_loss,
    sample_flow_times,
    sample_indices,
)


def tiny_unet(in_channels):
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=2, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=6, attention_head_dim=2, norm_num_groups=4,
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny UNets run ~20x faster on one thread when the shared machine's cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def text():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 6, generator=g), torch.zeros(1, 3, 6)


def test_generator_training_and_guided_sampling(text):
    tau, tau_empty = text
    unet = tiny_unet(2)
    z_0 = torch.randn(2, 2, 8, 8)
    objective = DiffusionObjective(DDPMSchedule(), prediction="v", min_snr_gamma=5.0)
    context, _ = drop_condition(tau, 0.1)
    sample = objective.noise(z_0, torch.randn_like(z_0), sample_indices(2, objective.schedule))
    loss = objective.loss(unet(sample.z_s, sample.index, encoder_hidden_states=context).sample, sample)
    loss.backward()
    assert loss.item() > 0 and unet.conv_in.weight.grad is not None

    model = Denoiser(ClassifierFreeGuidance(UNetNetwork(unet.eval()), 3.0), objective.schedule, "v")
    extra = {"cond": {"context": tau}, "uncond": {"context": tau_empty}}
    runs = []
    for _ in range(2):
        x = initial_noise((2, 2, 8, 8), [torch.Generator().manual_seed(k) for k in range(2)])
        with torch.no_grad():
            runs.append(get_sampler("dpm")(model, x, diffusion_times(4), extra_args=extra, disable=True))
    assert runs[0].shape == (2, 2, 8, 8) and torch.isfinite(runs[0]).all()
    assert torch.equal(runs[0], runs[1])


def test_editor_training_and_guided_euler_edit(text):
    tau, tau_empty = text
    velocity = UNetNetwork(tiny_unet(4), time_scale=1000)
    x_0, x_T = torch.randn(2, 2, 8, 8), torch.randn(2, 2, 8, 8)
    path = RectifiedFlowPath()
    sample = path.sample(x_0, torch.randn_like(x_0), sample_flow_times(2))
    loss = flow_matching_loss(ConcatSource(velocity)(sample.x_t, sample.t, source=x_T, context=tau), sample)
    assert loss.item() > 0

    field = ClassifierFreeGuidance(ConcatSource(velocity), scale=2.0)
    x = path.edit_start(x_T, torch.randn(x_T.shape, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        edited = get_solver("heun")(field, x, flow_times(3, 0.01), extra_args={"source": x_T, "cond": {"context": tau}, "uncond": {"context": tau_empty}}, disable=True)
    assert edited.shape == x_T.shape and torch.isfinite(edited).all()


def test_distillation_step_on_unets(text):
    tau, tau_empty = text
    schedule = DDPMSchedule()
    teacher = Denoiser(ClassifierFreeGuidance(UNetNetwork(tiny_unet(2).eval()), 3.0), schedule, "v")
    student_unet = tiny_unet(2)
    student = Denoiser(UNetNetwork(student_unet), schedule, "v")
    loss, figures = progressive_distillation_loss(
        student, teacher, torch.randn(2, 2, 8, 8), 4, student_args={"context": tau},
        teacher_args={"cond": {"context": tau}, "uncond": {"context": tau_empty}},
    )
    loss.backward()
    assert figures["distill_loss"] == pytest.approx(loss.item())
    assert student_unet.conv_in.weight.grad is not None
