"""The editing maths: path (1), target velocity (2), loss (3), x_start (4), solvers (5), CFG with concat."""

import pytest
import torch

from foleyflow.pipelines._interim_diffusion import (
    SOLVERS,
    RectifiedFlowPath,
    flow_matching_loss,
    guided_velocity,
    time_grid,
)


def test_path_and_target_velocity_at_known_inputs():
    path = RectifiedFlowPath(sigma_min=0.1)
    x_0, eps = torch.full((1, 2), 3.0), torch.full((1, 2), -1.0)
    # (1): (1 - 0.9 * 0.5) * -1 + 0.5 * 3 = -0.55 + 1.5
    assert torch.allclose(path.x_t(x_0, eps, 0.5), torch.full((1, 2), 0.95))
    assert torch.allclose(path.x_t(x_0, eps, 0.0), eps) and torch.allclose(path.x_t(x_0, eps, 1.0), x_0 + 0.1 * eps)
    # (2): 3 - 0.9 * -1
    assert torch.allclose(path.target_velocity(x_0, eps), torch.full((1, 2), 3.9))


def test_target_velocity_is_the_time_derivative_of_the_path():
    path = RectifiedFlowPath(sigma_min=0.05)
    x_0, eps = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    h = 1e-3
    slope = (path.x_t(x_0, eps, 0.4 + h) - path.x_t(x_0, eps, 0.4 - h)) / (2 * h)
    assert torch.allclose(slope, path.target_velocity(x_0, eps), atol=1e-3)


def test_per_sample_times_broadcast():
    path = RectifiedFlowPath()
    x_0, eps = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    x_t = path.x_t(x_0, eps, torch.tensor([0.25, 0.75]))
    assert torch.allclose(x_t[0], torch.full((1, 2, 2), 0.25)) and torch.allclose(x_t[1], torch.full((1, 2, 2), 0.75))


def test_flow_matching_loss_is_the_mean_squared_error():
    assert flow_matching_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])).item() == pytest.approx(2.5)


def test_x_start_lies_on_the_path_towards_the_source():
    path = RectifiedFlowPath(sigma_min=0.0)
    source, eps = torch.full((1, 3), 2.0), torch.full((1, 3), 1.0)
    # (4) with t_start 0.01: 0.99 * 1 + 0.01 * 2
    assert torch.allclose(path.x_start(source, eps, 0.01), torch.full((1, 3), 1.01))
    assert torch.equal(path.x_start(source, eps, 0.0), eps)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("steps", [1, 3, 10])
def test_solvers_land_on_the_data_point_of_the_analytic_velocity_field(solver, steps):
    """The conditional field towards a fixed x_0 is constant along each straight path, so Euler/Heun are exact."""
    sigma_min = 0.1
    path = RectifiedFlowPath(sigma_min)
    x_0, eps = torch.randn(2, 4), torch.randn(2, 4)

    def velocity(x, t):
        noise = (x - t * x_0) / (1 - (1 - sigma_min) * t)  # invert (1) for eps
        return x_0 - (1 - sigma_min) * noise  # (2)

    t_start = 0.01
    solve, _ = SOLVERS[solver]
    end = solve(velocity, path.x_start(x_0, eps, t_start), time_grid(t_start, steps))
    assert torch.allclose(end, path.x_t(x_0, eps, 1.0), atol=1e-5)


def test_euler_on_a_constant_field_moves_by_velocity_times_duration():
    solve, _ = SOLVERS["euler"]
    end = solve(lambda x, t: torch.full_like(x, 2.0), torch.zeros(3), time_grid(0.25, 7))
    assert torch.allclose(end, torch.full((3,), 1.5))


class RecordingNet(torch.nn.Module):
    """v = mean of the source channels + the first text state value; records what it is given."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, sample, t, encoder_hidden_states, encoder_attention_mask=None):
        self.calls.append((sample.clone(), encoder_hidden_states.clone()))
        channels = sample.shape[1] // 2
        out = sample[:, channels:] + encoder_hidden_states[:, :1, :1, None]
        return type("Out", (), {"sample": out})()


def test_cfg_runs_both_branches_with_the_source_and_combines_them():
    net = RecordingNet()
    x, source = torch.zeros(1, 2, 3, 4), torch.full((1, 2, 3, 4), 5.0)
    cond = (torch.full((1, 2, 6), 1.0), torch.ones(1, 2, dtype=torch.long))
    uncond = (torch.full((1, 1, 6), -1.0), torch.ones(1, 1, dtype=torch.long))
    v = guided_velocity(net, source, cond, uncond, scale=3.0)(x, torch.tensor(0.5))
    (sample, states), = net.calls  # one batched forward for both branches
    assert sample.shape[0] == 2 and torch.equal(sample[:, 2:], torch.cat([source, source]))
    assert torch.equal(states[:, 0, 0], torch.tensor([-1.0, 1.0]))  # unconditional first, padded to 2 tokens
    # v_u = 5 - 1 = 4, v_c = 5 + 1 = 6, v = 4 + 3 (6 - 4) = 10
    assert torch.allclose(v, torch.full_like(x, 10.0))


def test_cfg_scale_one_runs_only_the_conditional_branch():
    net = RecordingNet()
    source = torch.ones(2, 2, 3, 4)
    cond = (torch.full((2, 1, 6), 2.0), None)
    v = guided_velocity(net, source, cond, (torch.zeros(2, 1, 6), None), scale=1.0)(torch.zeros(2, 2, 3, 4), torch.tensor(0.1))
    assert len(net.calls) == 1 and net.calls[0][0].shape[0] == 2 and torch.allclose(v, torch.full_like(v, 3.0))
