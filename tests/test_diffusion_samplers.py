import pytest
import torch
from diffusers import DDIMScheduler

from foleyflow.diffusion.denoiser import Denoiser
from foleyflow.diffusion.samplers import SAMPLERS, get_sampler, initial_noise, sample_ddim, sample_ddpm, sample_dpmpp_2m
from foleyflow.diffusion.schedule import DDPMSchedule, diffusion_times
from foleyflow.errors import InputError

SCHEDULE = DDPMSchedule()
MU, C = 0.8, 0.5  # data ~ N(MU, C^2) per element


class GaussianDenoiser:
    """The exact posterior mean E[z_0 | z_s] for data N(MU, C^2 I): closed form."""

    schedule = SCHEDULE

    def __call__(self, z, s):
        assert bool((s == s[0]).all())  # samplers move the whole batch in step: one coefficient suffices
        a, sig = SCHEDULE.alpha(s[0]).to(z), SCHEDULE.sigma(s[0]).to(z)
        return MU + a * C**2 / (a**2 * C**2 + sig**2) * (z - a * MU)


def probability_flow_endpoint(z1):
    """Where the probability-flow ODE carries z_1 for Gaussian data: a closed form."""
    a1, s1 = SCHEDULE.alpha(1.0).item(), SCHEDULE.sigma(1.0).item()
    return MU + C * (z1 - a1 * MU) / (a1**2 * C**2 + s1**2) ** 0.5


def point_denoiser(value):
    return Denoiser(lambda z, index: torch.full_like(z, value), SCHEDULE, "sample")


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_single_point_data_is_reached_exactly(name):
    x = initial_noise((2, 8, 4, 4), torch.Generator().manual_seed(0))
    out = get_sampler(name)(point_denoiser(0.3), x, diffusion_times(10), disable=True, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, torch.full_like(out, 0.3), rtol=0, atol=1e-5)


def _errors(sampler, steps):
    z1 = initial_noise((4, 2, 8, 8), torch.Generator().manual_seed(0), dtype=torch.float64)
    target = probability_flow_endpoint(z1)
    return [(sampler(GaussianDenoiser(), z1, diffusion_times(n).double(), disable=True) - target).abs().max().item() for n in steps]


def test_ddim_converges_to_the_probability_flow_answer():
    coarse, fine = _errors(sample_ddim, (200, 1000))
    assert fine < 1e-2
    assert 3.5 < coarse / fine < 6.0  # first order: 5x the steps, about 5x less error


def test_dpm_solver_beats_ddim_at_equal_steps():
    for steps in (25, 50):
        (dpm,), (ddim,) = _errors(sample_dpmpp_2m, (steps,)), _errors(sample_ddim, (steps,))
        assert dpm < ddim / 1.5  # measured: 1.7x (25 steps), 2.0x (50 steps) less error
    assert _errors(sample_dpmpp_2m, (1000,))[0] < 3e-3


def test_ddpm_samples_have_the_data_distribution():
    z1 = initial_noise((8000, 1, 1, 1), torch.Generator().manual_seed(0))
    out = sample_ddpm(GaussianDenoiser(), z1, diffusion_times(500), disable=True, generator=torch.Generator().manual_seed(1))
    # sampling error of the mean ~ 0.006 and of the std ~ 0.004 for 8000 draws
    assert out.mean().item() == pytest.approx(MU, abs=0.02)
    assert out.std().item() == pytest.approx(C, abs=0.015)


def test_ddim_matches_diffusers_ddim_on_the_integer_grid():
    network = lambda z, index: torch.tanh(z) * (index.reshape(-1, 1, 1, 1) / 1000)  # noqa: E731 - any x-prediction
    z1 = initial_noise((2, 8, 4, 4), torch.Generator().manual_seed(2))
    ours = sample_ddim(Denoiser(network, SCHEDULE, "sample"), z1, diffusion_times(10), disable=True)
    reference = DDIMScheduler(
        **SCHEDULE.diffusers_kwargs(), prediction_type="sample", clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing"
    )
    reference.set_timesteps(10)
    z = z1
    for index in reference.timesteps:
        z = reference.step(network(z, index.float().expand(2)), index, z).prev_sample
    torch.testing.assert_close(ours, z, rtol=1e-4, atol=1e-4)


def test_seeds_reproduce_and_differ():
    z1 = initial_noise((2, 1, 4, 4), torch.Generator().manual_seed(0))
    run = lambda seed: sample_ddpm(GaussianDenoiser(), z1, diffusion_times(20), disable=True, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_per_sample_generators_make_samples_batch_independent():
    batch = initial_noise((3, 2, 4, 4), [torch.Generator().manual_seed(k) for k in range(3)])
    alone = initial_noise((1, 2, 4, 4), torch.Generator().manual_seed(2))
    torch.testing.assert_close(batch[2:], alone)
    together = sample_ddim(GaussianDenoiser(), batch, diffusion_times(8), disable=True)
    torch.testing.assert_close(together[2:], sample_ddim(GaussianDenoiser(), alone, diffusion_times(8), disable=True))


def test_callback_sees_every_step():
    seen = []
    sample_ddim(point_denoiser(0.0), torch.randn(1, 1, 2, 2), diffusion_times(5), callback=lambda info: seen.append(info["i"]), disable=True)
    assert seen == [0, 1, 2, 3, 4]


def test_bad_grids_and_names_are_input_errors():
    x = torch.randn(1, 1, 2, 2)
    with pytest.raises(InputError):
        sample_ddpm(point_denoiser(0.0), x, torch.tensor([1.0, 0.7777, 0.0]), disable=True)
    with pytest.raises(InputError):
        sample_ddim(point_denoiser(0.0), x, torch.tensor([0.0, 1.0]), disable=True)
    with pytest.raises(InputError):
        get_sampler("euler-a")
