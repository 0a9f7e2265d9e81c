"""Paths, noise schedules, training objectives and samplers.

TIME CONVENTION (stated once, here; every module of this folder follows it)
---------------------------------------------------------------------------
Flow matching (RFM-Edit, SPEC 2) uses flow time ``t`` in [0, 1]:
    t = 0 is pure noise, t = 1 is data.  x_t = (1 - (1 - sigma_min) t) eps + t x_0.
    Samplers integrate from t_start up to 1.
Diffusion (Tango's DDPM and BSA distillation, SPEC 1 and 4) uses diffusion time ``s``:
    s = 0 is data, s = 1 is pure noise.  z_s = alpha_s z_0 + sigma_s eps.
    Discrete DDPM indices i in {0..N-1} (diffusers' ``timesteps``) map to s = (i + 1) / N;
    samplers step from s = 1 down towards 0.
The two never mix: a module takes either ``t`` (flow) or ``s``/indices (diffusion), named so.

Path, schedule and solver are separate objects; every sampler shares one signature.

Where things live:
    schedule.py         DDPMSchedule (betas, alpha_s, sigma_s, SNR, lambda; index <-> s), diffusion_times
    parametrization.py  eps / v / x predictions and conversions
    objective.py        DDPM training loss (eps or v, Min-SNR-gamma), classifier-free dropout
    denoiser.py         Denoiser: a network as z_s, s -> x_hat_0 (what diffusion samplers call)
    guidance.py         ClassifierFreeGuidance (Tango's formula), ConcatSource (RFM-Edit's input)
    networks.py         UNetNetwork: a diffusers UNet2DConditionModel as net(x, time, context)
    tensors.py          broadcasting and RNG-device helpers
    samplers.py         sample_ddim / sample_ddpm / sample_dpmpp_2m, ddim_step
    flow.py             RectifiedFlowPath (eqs. 1, 2, 4), flow_matching_loss (3), time sampling
    ode.py              solve_euler (5) / solve_heun / solve_midpoint
    distill.py          BSA progressive distillation (Algorithm 1, weightings 7-10) and Euler halving
"""

from foleyflow.diffusion.denoiser import Denoiser
from foleyflow.diffusion.distill import (
    DistillationRound,
    Weighting,
    distillation_loss,
    flow_distillation_loss,
    flow_halving_loss,
    flow_teacher_target,
    loss_weight,
    progressive_distillation_loss,
    progressive_rounds,
    teacher_target,
)
from foleyflow.diffusion.flow import FlowSample, RectifiedFlowPath, TimeSampling, flow_matching_loss, flow_times, sample_flow_times
from foleyflow.diffusion.guidance import ClassifierFreeGuidance, ConcatSource
from foleyflow.diffusion.networks import UNetNetwork
from foleyflow.diffusion.objective import DiffusionObjective, NoisedSample, drop_condition, sample_indices
from foleyflow.diffusion.ode import SOLVERS, get_solver, solve_euler, solve_heun, solve_midpoint
from foleyflow.diffusion.parametrization import Prediction
from foleyflow.diffusion.samplers import SAMPLERS, ddim_step, get_sampler, initial_noise, sample_ddim, sample_ddpm, sample_dpmpp_2m
from foleyflow.diffusion.schedule import DDPMSchedule, diffusion_times
