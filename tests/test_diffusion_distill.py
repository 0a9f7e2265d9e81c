import pytest
import torch

from foleyflow.diffusion.denoiser import Denoiser
from foleyflow.diffusion.distill import (
    Weighting,
    progressive_distillation_loss,
    distillation_loss,
    flow_halving_loss,
    flow_teacher_target,
    loss_weight,
    progressive_rounds,
    sample_student_flow_times,
    sample_student_times,
    teacher_target,
    two_step_x0_target,
)
from foleyflow.diffusion.flow import RectifiedFlowPath
from foleyflow.diffusion.ode import solve_euler
from foleyflow.diffusion.samplers import ddim_step, sample_ddim
from foleyflow.diffusion.schedule import DDPMSchedule
from foleyflow.errors import InputError

SCHEDULE = DDPMSchedule()


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_target_is_the_x0_whose_single_ddim_step_lands_on_z_t2():
    z_t, z_t2 = _randn(4, 8, 3, 5, seed=1), _randn(4, 8, 3, 5, seed=2)
    s, s2 = torch.tensor([0.9, 0.5, 0.2, 0.01]), torch.tensor([0.85, 0.45, 0.1, 0.0])
    a, sig, a2, sig2 = SCHEDULE.alpha(s), SCHEDULE.sigma(s), SCHEDULE.alpha(s2), SCHEDULE.sigma(s2)
    x0 = two_step_x0_target(z_t, z_t2, a, sig, a2, sig2)
    torch.testing.assert_close(ddim_step(z_t, x0, a, sig, a2, sig2), z_t2)


def test_teacher_target_reproduces_two_teacher_ddim_steps():
    """x~_0 from teacher_target, stepped once t -> t'' by DDIM, equals the teacher's own two-step DDIM run."""
    weights = _randn(8, 8, seed=3) / 4
    teacher = Denoiser(lambda z, index: torch.tanh(torch.einsum("bchw,cd->bdhw", z, weights)) * (1 + index.reshape(-1, 1, 1, 1) / 1000), SCHEDULE, "epsilon")
    z0, eps, n = _randn(3, 8, 2, 4, seed=4), _randn(3, 8, 2, 4, seed=5), 50
    s = torch.full((3,), 0.6, dtype=torch.float64)
    target = teacher_target(teacher, z0, eps, s, n)
    teacher_endpoint = sample_ddim(teacher, target.z_s, torch.tensor([0.6, 0.6 - 0.5 / n, 0.6 - 1 / n], dtype=torch.float64), disable=True)
    s2 = s - 1 / n
    student_step = ddim_step(target.z_s, target.x0_target, SCHEDULE.alpha(s), SCHEDULE.sigma(s), SCHEDULE.alpha(s2), SCHEDULE.sigma(s2))
    torch.testing.assert_close(student_step, teacher_endpoint)
    torch.testing.assert_close(target.snr, SCHEDULE.snr(s))


def test_teacher_of_a_single_point_targets_that_point():
    teacher = Denoiser(lambda z, index: torch.full_like(z, 0.4), SCHEDULE, "sample")
    z0, eps = _randn(2, 8, 2, 2, seed=6), _randn(2, 8, 2, 2, seed=7)
    target = teacher_target(teacher, z0, eps, torch.tensor([1.0, 1 / 25], dtype=torch.float64), 25)
    torch.testing.assert_close(target.x0_target, torch.full_like(z0, 0.4))


def test_weightings_match_their_formulas_at_known_snrs():
    snr = torch.tensor([0.25, 1.0, 4.0, 9.0])
    expected = {
        "bsa": [1.25, 2.0, 5.0, 5.0],  # min(SNR + 1, 5)
        "salimans-max": [1.0, 1.0, 4.0, 9.0],  # max(SNR, 1)
        "salimans-plus1": [1.25, 2.0, 5.0, 10.0],  # SNR + 1
        "min-snr": [0.25, 1.0, 4.0, 5.0],  # min(SNR, 5)
        "none": [1.0, 1.0, 1.0, 1.0],
    }
    for name, values in expected.items():
        torch.testing.assert_close(loss_weight(snr, name, gamma=5.0), torch.tensor(values))
    torch.testing.assert_close(loss_weight(snr), torch.tensor(expected["bsa"]))  # BSA with gamma 5 is the default
    torch.testing.assert_close(loss_weight(snr, Weighting.BSA, gamma=3.0), torch.tensor([1.25, 2.0, 3.0, 3.0]))
    with pytest.raises(InputError):
        loss_weight(snr, "snr-squared")


def test_distillation_loss_is_weighted_mean_square():
    teacher = Denoiser(lambda z, index: torch.zeros_like(z), SCHEDULE, "sample")
    target = teacher_target(teacher, _randn(2, 1, 2, 2, seed=8), _randn(2, 1, 2, 2, seed=9), torch.tensor([1.0, 0.1]), 10)
    student_x0 = target.x0_target + torch.tensor([1.0, 2.0], dtype=torch.float64).reshape(2, 1, 1, 1)
    w = loss_weight(target.snr, "bsa")
    assert distillation_loss(student_x0, target, "bsa").item() == pytest.approx(((w[0] * 1 + w[1] * 4) / 2).item())


def test_student_times_lie_on_the_student_grid():
    t = sample_student_times(2000, 25, torch.Generator().manual_seed(0))
    assert set((t * 25).round().long().tolist()) == set(range(1, 26))
    tf = sample_student_flow_times(2000, 4, 0.2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.unique(tf), torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64))


def test_flow_target_is_one_euler_step_through_two_teacher_steps():
    teacher = lambda x, t: -2.0 * x * (1 + t.reshape(-1, 1, 1, 1))  # noqa: E731 - a curved field
    x_t, t, n, t_start = _randn(3, 8, 2, 2, seed=10), torch.tensor([0.01, 0.505, 0.7525], dtype=torch.float64), 4, 0.01
    target = flow_teacher_target(teacher, x_t, t, n, t_start)
    dt = (1 - t_start) / (2 * n)
    for k in range(3):
        two_teacher_steps = solve_euler(teacher, x_t[k : k + 1], torch.tensor([t[k], t[k] + dt, t[k] + 2 * dt], dtype=torch.float64), disable=True)
        one_student_step = solve_euler(lambda x, tt: target.velocity_target[k : k + 1], x_t[k : k + 1], torch.tensor([t[k], t[k] + 2 * dt], dtype=torch.float64), disable=True)
        torch.testing.assert_close(one_student_step, two_teacher_steps)


def test_rounds_halve_the_steps_and_guide_only_the_first_teacher():
    rounds = progressive_rounds(200, 3, guidance=3.0)
    assert [(r.teacher_steps, r.student_steps) for r in rounds] == [(200, 100), (100, 50), (50, 25)]
    assert [r.teacher_guidance for r in rounds] == [3.0, 1.0, 1.0]
    with pytest.raises(InputError):
        progressive_rounds(200, 4)  # 12.5 steps
    with pytest.raises(InputError):
        progressive_rounds(8, 0)


class TinyEpsNet(torch.nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(2, 2, 1)

    def forward(self, z, index):
        return self.conv(z) * (index.reshape(-1, 1, 1, 1) / 1000)


def test_a_tiny_bsa_round_lowers_the_student_loss():
    teacher_net, student_net = TinyEpsNet(0), TinyEpsNet(1)
    teacher, student = Denoiser(teacher_net, SCHEDULE, "epsilon"), Denoiser(student_net, SCHEDULE, "epsilon")
    z0 = torch.randn(16, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(student_net.parameters(), lr=3e-2)
    evaluate = lambda: progressive_distillation_loss(student, teacher, z0, 4, generator=torch.Generator().manual_seed(99))[0].item()  # noqa: E731
    before = evaluate()
    g = torch.Generator().manual_seed(1)
    for _ in range(60):
        loss, figures = progressive_distillation_loss(student, teacher, z0, 4, generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert figures["distill_loss"] >= 0
    assert evaluate() < 0.5 * before


def test_a_tiny_flow_halving_round_lowers_the_student_loss():
    teacher = lambda x, t, source: source - x  # noqa: E731 - a fixed editor field
    student_net = torch.nn.Conv2d(4, 2, 1)
    student = lambda x, t, source: student_net(torch.cat([x, source], dim=1))  # noqa: E731
    x0, source = torch.randn(16, 2, 2, 2, generator=torch.Generator().manual_seed(0)), torch.ones(16, 2, 2, 2)
    args = {"source": source}
    optimizer = torch.optim.Adam(student_net.parameters(), lr=3e-2)
    path = RectifiedFlowPath()
    evaluate = lambda: flow_halving_loss(student, teacher, path, x0, 4, 0.01, torch.Generator().manual_seed(9), args, args)[0].item()  # noqa: E731
    before = evaluate()
    g = torch.Generator().manual_seed(1)
    for _ in range(60):
        loss, _ = flow_halving_loss(student, teacher, path, x0, 4, 0.01, g, args, args)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert evaluate() < 0.2 * before
