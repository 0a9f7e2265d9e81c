import math

import pytest
import torch

from foleyflow.diffusion.flow import RectifiedFlowPath, SourceBridgePath, flow_matching_loss, flow_times, sample_flow_times
from foleyflow.diffusion.guidance import ClassifierFreeGuidance, ConcatSource
from foleyflow.diffusion.ode import SOLVERS, get_solver, solve_euler, solve_heun, solve_midpoint
from foleyflow.errors import InputError


def test_path_and_velocity_at_known_inputs():
    path = RectifiedFlowPath(sigma_min=0.1)
    x0, eps = torch.full((1, 1, 1, 1), 2.0), torch.full((1, 1, 1, 1), 1.0)
    # (1): (1 - 0.9 * 0.25) * 1 + 0.25 * 2 = 0.775 + 0.5
    assert path.x_t(x0, eps, torch.tensor([0.25])).item() == pytest.approx(1.275)
    # (2): 2 - 0.9 * 1
    assert path.dx_t(x0, eps).item() == pytest.approx(1.1)


def test_path_ends_and_velocity_is_its_derivative():
    path = RectifiedFlowPath(sigma_min=1e-3)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 8, 4, 4, generator=g), torch.randn(3, 8, 4, 4, generator=g)
    torch.testing.assert_close(path.x_t(x0, eps, torch.zeros(3)), eps)
    torch.testing.assert_close(path.x_t(x0, eps, torch.ones(3)), x0 + 1e-3 * eps)
    t = torch.tensor([0.1, 0.5, 0.9])
    finite_difference = (path.x_t(x0, eps, t + 1e-3) - path.x_t(x0, eps, t - 1e-3)) / 2e-3
    torch.testing.assert_close(finite_difference, path.dx_t(x0, eps).expand_as(x0), rtol=1e-3, atol=1e-3)


def test_flow_matching_loss_at_known_inputs():
    path = RectifiedFlowPath(sigma_min=0.1)
    x0, eps = torch.full((2, 1, 2, 2), 2.0), torch.ones(2, 1, 2, 2)
    sample = path.sample(x0, eps, torch.tensor([0.3, 0.6]))
    assert flow_matching_loss(torch.zeros_like(x0), sample).item() == pytest.approx(1.1**2)  # (3)
    assert flow_matching_loss(sample.dx_t, sample).item() == 0.0


def test_edit_start_point_equation_4():
    path = RectifiedFlowPath(sigma_min=1e-4)
    source, eps = torch.full((1, 1, 1, 1), 3.0), torch.full((1, 1, 1, 1), -1.0)
    expected = (1 - (1 - 1e-4) * 0.01) * -1.0 + 0.01 * 3.0
    assert path.edit_start(source, eps).item() == pytest.approx(expected)  # default t_start = 0.01
    assert path.edit_start(source, eps, t_start=0.0).item() == -1.0
    with pytest.raises(InputError):
        path.edit_start(source, eps, t_start=1.0)


def test_time_sampling_distributions():
    g = torch.Generator().manual_seed(0)
    uniform = sample_flow_times(20000, "uniform", g)
    assert 0 <= uniform.min() and uniform.max() <= 1 and uniform.mean().item() == pytest.approx(0.5, abs=0.01)
    logit = sample_flow_times(20000, "logit-normal", g, loc=1.0)
    assert 0 < logit.min() and logit.max() < 1
    assert logit.median().item() == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.01)
    assert logit.std() < uniform.std()  # mass pulled towards the middle
    with pytest.raises(InputError):
        sample_flow_times(4, "cosine")


def _single_point_velocity(x0, sigma_min):
    """The exact flow-matching velocity field when the data is the single point x0 (straight paths)."""

    def velocity(x, t):
        t = t.reshape(-1, *([1] * (x.ndim - 1)))
        eps = (x - t * x0) / (1 - (1 - sigma_min) * t)
        return x0 - (1 - sigma_min) * eps

    return velocity


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solvers_land_on_the_known_answer_for_straight_paths(name):
    path = RectifiedFlowPath(sigma_min=1e-4)
    g = torch.Generator().manual_seed(1)
    # float64: Heun evaluates the field at t = 1, where it divides by sigma_min
    x0, eps = torch.randn(2, 8, 4, 4, generator=g, dtype=torch.float64), torch.randn(2, 8, 4, 4, generator=g, dtype=torch.float64)
    start = path.edit_start(torch.zeros_like(x0), eps)
    out = get_solver(name)(_single_point_velocity(x0, 1e-4), start, flow_times(3, t_start=0.01, dtype=torch.float64), disable=True)
    # the field is constant along straight lines: any step count reaches the end of the line through x_start
    eps_implied = (start - 0.01 * x0) / (1 - (1 - 1e-4) * 0.01)
    torch.testing.assert_close(out, x0 + 1e-4 * eps_implied, rtol=1e-8, atol=1e-8)


def _errors(solver, steps_list):
    """Errors on dx/dt = -t x from t = 0.01, whose solution is x(1) = x(0.01) exp(-(1 - 0.01^2) / 2)."""
    x_start = torch.tensor([[[[1.0, -2.0]]]], dtype=torch.float64)
    exact = x_start * math.exp(-(1 - 0.01**2) / 2)
    velocity = lambda x, t: -t.reshape(-1, 1, 1, 1) * x  # noqa: E731
    return [(solver(velocity, x_start, flow_times(n, 0.01).double(), disable=True) - exact).abs().max().item() for n in steps_list]


def test_euler_is_first_order_and_heun_midpoint_second_order():
    euler, heun, midpoint = _errors(solve_euler, (20, 40)), _errors(solve_heun, (20, 40)), _errors(solve_midpoint, (20, 40))
    assert 1.8 < euler[0] / euler[1] < 2.2
    assert 3.6 < heun[0] / heun[1] < 4.4
    assert 3.6 < midpoint[0] / midpoint[1] < 4.4
    assert heun[1] < euler[1] / 10


def test_guided_euler_edit_with_the_concatenated_source():
    # network(x (+) x_T, t, context) = x_T - x + context: guided field = x_T - x + (w c + (1 - w) u)
    def network(inputs, t, context):
        x, source = inputs.chunk(2, dim=1)
        return source - x + context.reshape(-1, 1, 1, 1)

    w, c, u = 2.0, 0.5, 0.1
    velocity = ClassifierFreeGuidance(ConcatSource(network), scale=w)
    source, start = torch.full((2, 2, 3, 3), 1.0), torch.zeros(2, 2, 3, 3)
    extra = {"source": source, "cond": {"context": torch.full((2,), c)}, "uncond": {"context": torch.full((2,), u)}}
    out = solve_euler(velocity, start, flow_times(2), extra_args=extra, disable=True)
    # dx/dt = b - x with b = 1 + w c + (1 - w) u; two Euler steps of 0.5 from 0: x = b (1 - 0.5^2)
    b = 1 + w * c + (1 - w) * u
    torch.testing.assert_close(out, torch.full_like(out, b * 0.75))


def test_bad_grids_are_input_errors():
    with pytest.raises(InputError):
        flow_times(0)
    with pytest.raises(InputError):
        solve_euler(lambda x, t: x, torch.zeros(1, 1, 1, 1), torch.tensor([1.0, 0.5]), disable=True)
    with pytest.raises(InputError):
        get_solver("rk45")
    with pytest.raises(InputError):
        RectifiedFlowPath(sigma_min=1.0)


def test_source_bridge_at_known_inputs():
    bridge = SourceBridgePath(t_start=0.5, sigma_min=0.0)
    x0, source, eps = (torch.full((1, 1, 1, 1), v) for v in (2.0, 4.0, 1.0))
    # x_start = 0.5 * 1 + 0.5 * 4 = 2.5; x_end = 2; at t = 0.75 halfway: 2.25; velocity (2 - 2.5) / 0.5
    sample = bridge.sample(x0, source, eps, torch.tensor([0.75]))
    assert sample.x_t.item() == pytest.approx(2.25) and sample.dx_t.item() == pytest.approx(-1.0)
    assert bridge.times(torch.tensor([0.0, 0.5, 1.0])).tolist() == [0.5, 0.75, 1.0]


def test_source_bridge_ends_and_reduces_to_path_1_where_source_is_the_target():
    path, bridge = RectifiedFlowPath(sigma_min=1e-3), SourceBridgePath(t_start=0.4, sigma_min=1e-3)
    g = torch.Generator().manual_seed(0)
    x0, source, eps = (torch.randn(3, 8, 4, 4, generator=g) for _ in range(3))
    t = torch.tensor([0.4, 0.7, 1.0])
    sample = bridge.sample(x0, source, eps, t)
    torch.testing.assert_close(sample.x_t[0], path.edit_start(source, eps, 0.4)[0])  # starts at (4)
    torch.testing.assert_close(sample.x_t[2], path.x_t(x0, eps, 1.0)[2])  # ends on the target
    same = bridge.sample(x0, x0, eps, t)
    torch.testing.assert_close(same.x_t, path.x_t(x0, eps, t))
    torch.testing.assert_close(same.dx_t, path.dx_t(x0, eps))
    inner = torch.tensor([0.5, 0.7, 0.9])
    finite_difference = (bridge.sample(x0, source, eps, inner + 1e-3).x_t - bridge.sample(x0, source, eps, inner - 1e-3).x_t) / 2e-3
    torch.testing.assert_close(finite_difference, sample.dx_t, rtol=1e-3, atol=1e-3)


def test_euler_from_t_start_with_the_bridge_velocity_lands_on_the_target():
    bridge = SourceBridgePath(t_start=0.5, sigma_min=1e-4)
    g = torch.Generator().manual_seed(1)
    x0, source, eps = (torch.randn(2, 8, 3, 3, generator=g, dtype=torch.float64) for _ in range(3))
    x_start, x_end = bridge.ends(x0, source, eps)
    velocity = bridge.sample(x0, source, eps, torch.full((2,), 0.5, dtype=torch.float64)).dx_t
    out = solve_euler(lambda x, t: velocity, x_start, flow_times(7, t_start=0.5, dtype=torch.float64), disable=True)
    torch.testing.assert_close(out, x_end)


def test_source_bridge_rejects_a_start_outside_the_unit_interval():
    with pytest.raises(InputError):
        SourceBridgePath(t_start=1.0)
