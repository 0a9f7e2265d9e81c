"""Speech rendered with espeak-ng and instrument phrases rendered with fluidsynth and a GM soundfont.

Both are optional: when the program (or a soundfont) is missing, the source is skipped with
the command that installs it. Rendering is done here, once, at fetch time (a few hundred
short files), into ``$FOLEYFLOW_HOME/raw/<source>/``; the corpus step then treats the files
like any recording.

Recordings, for splitting: an espeak voice (accent + variant) is one "speaker", so val and
test hear voices train never hears; an instrument phrase set in one register is one
recording of that instrument.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from functools import partial
from pathlib import Path
from typing import Callable

from foleyflow.data.corpus import RawClip
from foleyflow.data.ontology import sound_class
from foleyflow.data.paths import raw_dir
from foleyflow.data.sources.debian import read_file

SENTENCES = (
    "The train leaves in five minutes.", "Please close the door behind you.", "I think it is going to rain today.",
    "Where did you put the keys?", "Turn left at the next corner.", "The meeting starts at nine o'clock.",
    "Can you hear that noise outside?", "We should take the dog for a walk.", "Dinner is ready, come and eat.",
    "Thank you very much for your help.", "The river is higher than last year.", "Let me know when you arrive.",
    "My phone battery is almost empty.", "The shop opens again on Monday.", "Watch out, the floor is wet.",
    "I will call you back in an hour.", "The children are playing in the garden.", "Nobody answered the phone.",
    "It was a long and quiet evening.", "Could you speak a little louder?",
)
ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")
SENTENCES_PER_VOICE = 4

SOUNDFONTS = ("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
# class -> General MIDI program numbers (0-based) that sound like it.
INSTRUMENTS = {
    "piano": (0, 1), "organ": (19, 16), "guitar": (24, 25), "violin": (40,), "cello": (42,), "harp": (46,),
    "trumpet": (56,), "saxophone": (65, 66), "clarinet": (71,), "flute": (73, 72), "xylophone": (13, 12),
    "accordion": (21,),
}
SOUNDFONT_LICENCES = {"TimGM6mb.sf2": "GPL-2", "FluidR3_GM.sf2": "MIT"}
REGISTERS = {"low": 48, "mid": 60, "high": 72}
PHRASES = ((0, 4, 7, 12), (0, 2, 4, 5, 7), (7, 4, 0), (0, 7, 5, 4, 2, 0))


def _install_hint(program: str, package: str) -> str:
    return f"{program} is not installed, skipping it (install with `sudo apt-get install {package}`)"


# ---- speech ------------------------------------------------------------------------------

def speech_raw_clips(say: Callable[[str], None] = print) -> tuple[list[RawClip], dict[str, str]]:
    program = shutil.which("espeak-ng")
    if program is None:
        say(_install_hint("espeak-ng", "espeak-ng"))
        return [], {}
    folder = raw_dir() / "espeak-ng"
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    voices = [(accent, v, "male_speech") for accent in ACCENTS for v in MALE_VARIANTS] + \
             [(accent, v, "female_speech") for accent in ACCENTS for v in FEMALE_VARIANTS]
    for number, (accent, variant, label) in enumerate(voices):
        voice = f"{accent}+{variant}"
        for k in range(SENTENCES_PER_VOICE):
            sentence = SENTENCES[(number * SENTENCES_PER_VOICE + k) % len(SENTENCES)]
            path = folder / f"{accent}+{variant}-{k}.wav"
            if not path.is_file():
                result = subprocess.run([program, "-v", voice, "-s", str(150 + 10 * (number % 4)), "-w", str(path), sentence],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
                if result.returncode != 0 or not path.is_file():
                    break  # this voice is not available here
            sound = sound_class(label)
            clips.append(RawClip(
                clip_id=f"espeak-{accent}-{variant}-{k}", label=label, role=sound.role, captions=list(sound.sentences),
                source="espeak-ng", original_path=f"espeak-ng -v {voice} \"{sentence}\"", licence="GPL-3+ (espeak-ng output)",
                recording=f"espeak-ng/{voice}", load=partial(read_file, str(path)), extra={"text": sentence, "voice": voice}))
    say(f"espeak-ng: {len(clips)} speech clips from {len(voices)} voices")
    return clips, {"espeak-ng": "Speech synthesised with espeak-ng (GPL-3+); the sentences are foleyflow's own."}


# ---- instruments -------------------------------------------------------------------------

def _variable_length(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def phrase_midi(program: int, notes: list[int], beat_ticks: int = 240, velocity: int = 96) -> bytes:
    """A format-0 MIDI file: one program change, then the notes one after another (120 bpm)."""
    events = bytearray(b"\x00\xc0" + bytes([program]))
    for i, note in enumerate(notes):
        length = beat_ticks * (2 if i == len(notes) - 1 else 1)
        events += b"\x00\x90" + bytes([note, velocity])
        events += _variable_length(length) + b"\x80" + bytes([note, 0])
    events += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    return header + b"MTrk" + struct.pack(">I", len(events)) + bytes(events)


def _soundfont() -> str | None:
    found = next((sf2 for sf2 in SOUNDFONTS if Path(sf2).is_file()), None)
    return str(Path(found).resolve()) if found else None


def instrument_raw_clips(say: Callable[[str], None] = print) -> tuple[list[RawClip], dict[str, str]]:
    program = shutil.which("fluidsynth")
    soundfont = _soundfont()
    if program is None or soundfont is None:
        say(_install_hint("fluidsynth" if program is None else "a GM soundfont", "fluidsynth timgm6mb-soundfont"))
        return [], {}
    folder = raw_dir() / "fluidsynth"
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for label, programs in INSTRUMENTS.items():
        for gm in programs:
            for register, root in REGISTERS.items():
                for k, phrase in enumerate(PHRASES):
                    stem = f"{label}-{gm}-{register}-{k}"
                    wav, mid = folder / f"{stem}.wav", folder / f"{stem}.mid"
                    if not wav.is_file():
                        mid.write_bytes(phrase_midi(gm, [root + step for step in phrase]))
                        subprocess.run([program, "-ni", "-q", "-F", str(wav), "-r", "16000", "-g", "0.8", soundfont, str(mid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
                    if not wav.is_file():
                        continue
                    sound = sound_class(label)
                    clips.append(RawClip(
                        clip_id=f"fluidsynth-{stem}", label=label, role=sound.role, captions=list(sound.sentences),
                        source="fluidsynth", original_path=f"GM program {gm}, {register} register, phrase {k} ({Path(soundfont).name})",
                        licence=f"rendered from {Path(soundfont).name} ({SOUNDFONT_LICENCES.get(Path(soundfont).name, 'see the soundfont package')})", recording=f"fluidsynth/{label}/{gm}/{register}",
                        load=partial(read_file, str(wav)), extra={"program": gm, "register": register}))
    say(f"fluidsynth: {len(clips)} instrument clips with {Path(soundfont).name}")
    return clips, {"fluidsynth": f"Instrument phrases rendered with fluidsynth from {soundfont}."}
