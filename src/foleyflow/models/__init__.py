"""Networks and their on-disk format.

checkpoint.py  the model-folder format (config.json + model.safetensors + MODEL_CARD.md),
               the registry that resolves "default" to the shipped models, legacy loading.
Networks (VAE, vocoder, text encoders, UNet) each live in a module of their own.
"""
