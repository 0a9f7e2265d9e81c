import pytest
import torch
from diffusers import DDPMScheduler

from foleyflow.diffusion.schedule import DDPMSchedule, diffusion_times
from foleyflow.errors import InputError


@pytest.fixture(scope="module")
def schedule():
    return DDPMSchedule()


def test_tango_betas_match_diffusers_scaled_linear(schedule):
    reference = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    torch.testing.assert_close(schedule.alphas_cumprod.float(), reference.alphas_cumprod, rtol=1e-5, atol=1e-7)
    assert schedule.betas[0].item() == pytest.approx(0.00085)
    assert schedule.betas[-1].item() == pytest.approx(0.012)


def test_index_and_time_are_inverse_and_follow_the_convention(schedule):
    index = torch.tensor([0, 1, 499, 999])
    s = schedule.time_of(index)
    torch.testing.assert_close(s, torch.tensor([0.001, 0.002, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(schedule.index_of(s), index.double())


def test_alpha_sigma_exact_on_grid_and_variance_preserving(schedule):
    index = torch.tensor([0, 10, 500, 999])
    s = schedule.time_of(index)
    torch.testing.assert_close(schedule.alpha(s) ** 2, schedule.alphas_cumprod[index])
    torch.testing.assert_close(schedule.sigma(s) ** 2, 1 - schedule.alphas_cumprod[index])
    s_any = torch.rand(50, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(schedule.alpha(s_any) ** 2 + schedule.sigma(s_any) ** 2, torch.ones(50, dtype=torch.float64))


def test_data_end_is_clean(schedule):
    assert schedule.alpha(0.0).item() == 1.0
    assert schedule.sigma(0.0).abs().item() == 0.0


def test_between_indices_log_alpha_bar_is_the_mean_of_neighbours(schedule):
    halfway = schedule.log_alpha_bar((torch.tensor(10.5) + 1) / 1000)
    expected = schedule.alphas_cumprod[10:12].log().mean()
    assert halfway.item() == pytest.approx(expected.item())


def test_snr_and_log_snr(schedule):
    s = torch.linspace(0.001, 1.0, 200, dtype=torch.float64)
    lam = schedule.log_snr(s)
    assert bool((lam[1:] < lam[:-1]).all()), "log-SNR must fall as noise grows"
    torch.testing.assert_close(schedule.snr(s), schedule.alpha(s) ** 2 / schedule.sigma(s) ** 2)


def test_dtype_follows_input(schedule):
    assert schedule.alpha(torch.tensor([0.5], dtype=torch.float32)).dtype == torch.float32
    assert schedule.sigma(torch.tensor([0.5], dtype=torch.float64)).dtype == torch.float64


def test_add_noise_matches_diffusers(schedule):
    reference = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    g = torch.Generator().manual_seed(1)
    z0, eps = torch.randn(3, 8, 4, 2, generator=g), torch.randn(3, 8, 4, 2, generator=g)
    index = torch.tensor([0, 321, 999])
    ours = schedule.add_noise(z0, eps, schedule.time_of(index))
    torch.testing.assert_close(ours, reference.add_noise(z0, eps, index), rtol=1e-5, atol=1e-5)


def test_uniform_sampling_grid():
    torch.testing.assert_close(diffusion_times(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    with pytest.raises(InputError):
        diffusion_times(0)


def test_bad_schedule_is_an_input_error():
    with pytest.raises(InputError):
        DDPMSchedule(beta_schedule="cosine-ish")
    with pytest.raises(InputError):
        DDPMSchedule(beta_start=0.02, beta_end=0.01)
