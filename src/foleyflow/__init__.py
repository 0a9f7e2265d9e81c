"""foleyflow: text-to-audio generation and instruction-guided audio editing, offline.

Folders, one concern each:
    audio/        signal front-end: file I/O, log-mel, pressure-level mixing
    data/         the sound corpus, scene and triplet recipes, manifests
    models/       networks (VAE, vocoder, text encoders, UNet) and the checkpoint format
    diffusion/    paths, noise schedules, objectives and samplers (time convention inside)
    training/     the shared Accelerate trainer and one recipe per model
    evaluation/   metrics (FD, FAD, KL, IS, CLAP score) and their backbones
    interfaces/   the command line and other thin layers over the library
"""

__version__ = "0.1.0"
