import pytest
import torch
from diffusers import DDPMScheduler

from foleyflow.diffusion.objective import DiffusionObjective, drop_condition, min_snr_weight, sample_indices
from foleyflow.diffusion.parametrization import Prediction, to_x0
from foleyflow.diffusion.schedule import DDPMSchedule
from foleyflow.errors import InputError


def _data(seed=0, shape=(2, 8, 6, 4)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def test_epsilon_objective_targets_the_noise():
    z0, eps = _data()
    index = torch.tensor([5, 700])
    sample = DiffusionObjective(prediction="epsilon").noise(z0, eps, index)
    ab = DDPMSchedule().alphas_cumprod[index].float().reshape(-1, 1, 1, 1)
    torch.testing.assert_close(sample.z_s, ab.sqrt() * z0 + (1 - ab).sqrt() * eps)
    torch.testing.assert_close(sample.target, eps)


def test_v_objective_target_matches_diffusers_velocity():
    z0, eps = _data(1)
    index = torch.tensor([0, 999])
    sample = DiffusionObjective(prediction="v").noise(z0, eps, index)
    reference = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="v_prediction")
    torch.testing.assert_close(sample.target, reference.get_velocity(z0, eps, index), rtol=1e-5, atol=1e-5)


def test_loss_at_a_known_input():
    z0, eps = _data(2)
    objective = DiffusionObjective(prediction="epsilon")
    sample = objective.noise(z0, eps, torch.tensor([3, 900]))
    # an output off by 0.5 everywhere costs 0.25 per element
    assert objective.loss(sample.target + 0.5, sample).item() == pytest.approx(0.25)


def test_min_snr_weighted_loss_at_a_known_input():
    z0, eps = _data(3)
    gamma = 5.0
    objective = DiffusionObjective(prediction="epsilon", min_snr_gamma=gamma)
    sample = objective.noise(z0, eps, torch.tensor([10, 990]))  # SNR >> 5 and SNR << 5
    snr = sample.snr
    assert snr[0] > gamma > snr[1]
    output = sample.target.clone()
    output[0] += 1.0
    output[1] += 2.0
    expected = ((gamma / snr[0]) * 1.0 + 1.0 * 4.0) / 2
    assert objective.loss(output, sample).item() == pytest.approx(expected.item(), rel=1e-5)


def test_min_snr_weight_formulas():
    snr = torch.tensor([0.5, 2.0, 10.0])
    torch.testing.assert_close(min_snr_weight(snr, 5.0, Prediction.EPSILON), torch.tensor([1.0, 1.0, 0.5]))
    torch.testing.assert_close(min_snr_weight(snr, 5.0, Prediction.V), torch.tensor([0.5 / 1.5, 2.0 / 3.0, 5.0 / 11.0]))
    torch.testing.assert_close(min_snr_weight(snr, 5.0, Prediction.SAMPLE), torch.tensor([0.5, 2.0, 5.0]))


@pytest.mark.parametrize("prediction", ["epsilon", "v", "sample"])
def test_exact_prediction_converts_back_to_the_data(prediction):
    z0, eps = _data(4)
    objective = DiffusionObjective(prediction=prediction)
    sample = objective.noise(z0, eps, torch.tensor([100, 800]))
    s = sample.s
    x0 = to_x0(objective.prediction, sample.target, sample.z_s, objective.schedule.alpha(s), objective.schedule.sigma(s))
    torch.testing.assert_close(x0, z0, rtol=1e-4, atol=1e-4)


def test_indices_cover_the_training_range():
    index = sample_indices(5000, DDPMSchedule(), torch.Generator().manual_seed(0))
    assert index.min() == 0 and index.max() == 999 and index.dtype == torch.int64


def test_condition_dropout_rate_and_rows():
    states = torch.ones(4000, 3, 2)
    dropped_states, dropped = drop_condition(states, 0.1, torch.Generator().manual_seed(0))
    assert 0.08 < dropped.float().mean().item() < 0.12
    assert bool((dropped_states[dropped] == 0).all()) and bool((dropped_states[~dropped] == 1).all())


def test_condition_dropout_extremes_and_replacement():
    states = torch.randn(6, 3, 2)
    kept, mask = drop_condition(states, 0.0)
    assert torch.equal(kept, states) and not mask.any()
    empty = torch.full((1, 3, 2), 7.0)
    replaced, mask = drop_condition(states, 1.0, replacement=empty)
    assert mask.all() and bool((replaced == 7.0).all())
    with pytest.raises(InputError):
        drop_condition(states, 1.5)


def test_prediction_names():
    assert Prediction.parse("eps") is Prediction.EPSILON
    assert Prediction.parse("v_prediction") is Prediction.V
    with pytest.raises(InputError):
        Prediction.parse("score")
    with pytest.raises(InputError):
        DiffusionObjective(min_snr_gamma=0.0)
