"""Evaluation: FD, FAD, KL, IS, CLAP score, time per clip, reference metrics, and their backbones (SPEC 5)."""
