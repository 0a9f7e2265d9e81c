"""Training: the shared Accelerate trainer and one recipe per model (codec, generator, editor, ...)."""
