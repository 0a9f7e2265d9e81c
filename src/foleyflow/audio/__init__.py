"""Audio front-end: reading and writing files, the AudioLDM/Tango log-mel, pressure-level mixing.

Everything downstream sees mono float32 at SAMPLE_RATE.
"""

from foleyflow.audio.io import SAMPLE_RATE, load_audio, write_audio
from foleyflow.audio.mel import MelConfig, log_mel, tango_waveform_prep
from foleyflow.audio.mixing import join_captions, pressure_level_mix, sound_pressure_level

__all__ = [
    "SAMPLE_RATE",
    "load_audio",
    "write_audio",
    "MelConfig",
    "log_mel",
    "tango_waveform_prep",
    "join_captions",
    "pressure_level_mix",
    "sound_pressure_level",
]
