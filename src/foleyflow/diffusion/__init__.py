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
"""
