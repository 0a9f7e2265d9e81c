"""The edit samplers wired from foleyflow.diffusion: x_start (4), Euler/Heun edits (5), CFG with the concatenated source."""

import pytest
import torch

from foleyflow.diffusion.flow import RectifiedFlowPath
from foleyflow.pipelines.edit_network import FLOW_TIME_SCALE, ddpm_edit, flow_edit


class FakeUNet(torch.nn.Module):
    """Computes v = field(x_t, x_T, t, first text value) and records every call, like a diffusers UNet."""

    def __init__(self, field):
        super().__init__()
        self.field = field
        self.calls = []

    def forward(self, sample, timestep, encoder_hidden_states, encoder_attention_mask=None):
        self.calls.append((sample.clone(), torch.as_tensor(timestep).clone(), encoder_hidden_states.clone()))
        half = sample.shape[1] // 2
        out = self.field(sample[:, :half], sample[:, half:], torch.as_tensor(timestep) / FLOW_TIME_SCALE, encoder_hidden_states)
        return type("Output", (), {"sample": out})()


def _branches(batch=1, cond_tokens=2):
    cond = (torch.full((batch, cond_tokens, 4), 1.0), torch.ones(batch, cond_tokens, dtype=torch.long))
    uncond = (torch.full((batch, 1, 4), -1.0), torch.ones(batch, 1, dtype=torch.long))
    return cond, uncond


def test_a_zero_velocity_edit_returns_x_start_of_equation_4():
    source, noise = torch.full((1, 2, 4, 4), 2.0), torch.full((1, 2, 4, 4), 1.0)
    net = FakeUNet(lambda x, src, t, ctx: torch.zeros_like(x))
    out, nfe = flow_edit(net, source, noise, *_branches(), steps=3, cfg_scale=1.0, t_start=0.01, sigma_min=0.0)
    assert torch.allclose(out, torch.full_like(out, 0.99 * 1.0 + 0.01 * 2.0)) and nfe == 3
    # the network saw flow times t_start, ... on the UNet's 0..1000 scale
    assert [round(float(call[1][0]), 3) for call in net.calls] == [10.0, 340.0, 670.0]


@pytest.mark.parametrize("solver, per_step", [("euler", 1), ("heun", 2)])
@pytest.mark.parametrize("steps", [1, 4])
def test_an_edit_on_the_analytic_field_lands_on_the_target(solver, per_step, steps):
    """The conditional field towards a fixed target is constant along each straight path: the solvers are exact."""
    sigma_min = 0.1
    path = RectifiedFlowPath(sigma_min)
    target, noise, source = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4)
    expand = lambda t: t.reshape(-1, 1, 1, 1)  # noqa: E731
    # Invert (1) for the noise of the straight path to ``target`` through x; the field is (2) on that path.
    eps_of = lambda x, t: (x - expand(t) * target) / (1 - (1 - sigma_min) * expand(t))  # noqa: E731
    x_start = path.edit_start(source, noise, 0.01)
    eps_hat = (x_start - 0.01 * target) / (1 - (1 - sigma_min) * 0.01)
    net = FakeUNet(lambda x, src, t, ctx: path.dx_t(target, eps_of(x, t)))
    out, nfe = flow_edit(net, source, noise, *_branches(), steps=steps, cfg_scale=1.0, t_start=0.01, solver=solver, sigma_min=sigma_min)
    assert torch.allclose(out, path.x_t(target, eps_hat, 1.0), atol=1e-5) and nfe == steps * per_step


def test_cfg_runs_both_branches_on_the_source_in_one_batch_and_mixes_them():
    source = torch.full((1, 2, 4, 4), 5.0)
    # v = source value + first text value: v_c = 6, v_u = 4
    net = FakeUNet(lambda x, src, t, ctx: src + ctx[:, :1, :1, None])
    out, _ = flow_edit(net, source, torch.zeros(1, 2, 4, 4), *_branches(), steps=1, cfg_scale=3.0, t_start=0.0, sigma_min=0.0)
    (sample, _, states), = net.calls
    assert sample.shape[0] == 2 and torch.equal(sample[:, 2:], torch.cat([source, source]))  # both branches see x_T
    assert torch.equal(states[:, 0, 0], torch.tensor([1.0, -1.0])) and states.shape[1] == 2  # padded to one length
    assert torch.allclose(out, torch.full_like(out, 3.0 * 6.0 - 2.0 * 4.0))  # w v_c + (1 - w) v_u, dt = 1


def test_ddpm_baseline_uses_one_evaluation_per_step_with_the_source():
    source = torch.randn(2, 2, 4, 4)
    net = FakeUNet(lambda x, src, t, ctx: torch.zeros_like(x))
    out, nfe = ddpm_edit(net, source, torch.randn(2, 2, 4, 4), *_branches(batch=2), steps=5, cfg_scale=2.0)
    assert nfe == 5 and len(net.calls) == 5 and out.shape == source.shape
    assert all(torch.equal(call[0][:, 2:], torch.cat([source, source])) for call in net.calls)
    assert torch.isfinite(out).all()
