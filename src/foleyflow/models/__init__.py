"""Networks and their on-disk format.

checkpoint.py  the model-folder format (config.json + model.safetensors + MODEL_CARD.md),
               the registry that resolves "default" to the shipped models, legacy loading.
vae.py         the mel VAE (diffusers AutoencoderKL), presets "paper" and "cpu", encode/decode
vocoder.py     the HiFi-GAN vocoder (SpeechT5HifiGan), presets "paper" and "cpu",
               MPD + MSD discriminators, the Griffin-Lim fallback; loads either family
istft_vocoder.py  the iSTFT vocoder (Vocos' design: ConvNeXt at the frame rate + torch.istft)
codec.py       audio <-> latent in one object (log-mel + VAE + vocoder), from_pretrained
text.py        text encoders (MiniLM offline default, FLAN-T5 from a folder) with LoRA
unet.py        the denoiser (UNet2DConditionModel), presets "tango-paper" and "cpu-small"
interop.py     the public AudioLDM / Tango / diffusers checkpoint formats
benchmark.py   `bench codec`: VAE and vocoder figures on held-out clips, with reference rows
noise_floor.py `bench noise-floor`: what MR-STFT can credit a vocoder with on stationary noise
smooth_estimates.py  each MR-STFT term's best estimate where the truth is random: the band-flat
               reference, the smooth waveform
localiser.py   the edit localiser (one logit per latent frame: where an instruction acts) and, per_bin,
               the remover (log removal gains per latent cell); their ensembles
"""
