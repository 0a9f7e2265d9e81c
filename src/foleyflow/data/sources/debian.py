"""Labelled real recordings from Debian packages (``apt-get download`` + ``dpkg-deb``, no root).

Packages and what is taken from each:
    0ad-data                 audio/**.ogg inside mods/public/public.zip (music and UI stings left out)
    openttd-opensfx          the sounds of opensfx.cat, whose names are captions with author and licence
    lincity-ng-data          sounds/*.wav (city and ambient loops)
    hydrogen-drumkits        drum samples, labelled from each kit's drumkit.xml instrument names
    sound-theme-freedesktop  desktop event sounds (bells, alarms, chimes)
and, only when asked for (``data fetch --source debian-extra``, ``EXTRA_PACKAGES``), sounds
labelled by hand by file name (files not named in the map are left out):
    tuxpaint-stamps-default  the sound of each stamp (animals, birds, tools, instruments;
                             ``TUXPAINT_LABELS``); the spoken names are left out
    wesnoth-1.16-data        core unit and ambient sounds (``WESNOTH_LABELS``): bows, swords,
                             guns, horses, cries, fire, birds
A file is labelled by ``ontology.label_for`` (``DRUM_RULES`` for drum kits); files that no
rule claims are left out. Licences come from the package's DEP-5 copyright file (the last
``Files:`` stanza that matches wins), or from the finer source where there is one: each
opensfx sound names its own, each drum kit's drumkit.xml has a ``<license>``.
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from foleyflow.data.corpus import RawClip
from foleyflow.data.ontology import DRUM_RULES, OPENSFX_LABELS, label_for, sound_class
from foleyflow.data.paths import debs_dir, raw_dir

# package -> members to unpack (tar patterns); None unpacks everything (``dpkg-deb -x``).
PACKAGES: dict[str, list[str] | None] = {
    "0ad-data": ["./usr/share/games/0ad/mods/public/public.zip", "./usr/share/doc/0ad-data/copyright"],
    "openttd-opensfx": None,
    "lincity-ng-data": None,
    "hydrogen-drumkits": None,
    "sound-theme-freedesktop": None,
}
# Not in the default corpus, so that a fresh fetch rebuilds the corpus every figure in
# BENCHMARKS.md was measured on; the corpus's shipped splits keep those held out either way.
TUXPAINT_STAMPS = "usr/share/tuxpaint/stamps"
WESNOTH_SOUNDS = "usr/share/games/wesnoth/1.16/data/core/sounds"
EXTRA_PACKAGES: dict[str, list[str] | None] = {
    "tuxpaint-stamps-default": [f"./{TUXPAINT_STAMPS}/*.ogg", "./usr/share/doc/tuxpaint-stamps-default/copyright"],
    "wesnoth-1.16-data": [f"./{WESNOTH_SOUNDS}/*", "./usr/share/doc/wesnoth-1.16-data/copyright"],
}
AUDIO_SUFFIXES = (".ogg", ".oga", ".wav", ".flac")


# ---- download and unpack -----------------------------------------------------------------

def _run(command: list[str], cwd: Path | None = None, stdout=None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, text=stdout is None, check=False)


def download_package(name: str, say: Callable[[str], None] = print) -> Path | None:
    """The package's .deb in the cache, downloading it with ``apt-get download`` when absent."""
    folder = debs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob(f"{name}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        say(f"skipping {name}: apt-get is not available (on Debian/Ubuntu: `apt-get download {name}`)")
        return None
    result = _run(["apt-get", "download", name], cwd=folder)
    found = sorted(folder.glob(f"{name}_*.deb"))
    if result.returncode != 0 or not found:
        say(f"skipping {name}: `apt-get download {name}` failed ({(result.stderr or '').strip().splitlines()[-1:] or '?'});"
            " try `sudo apt-get update` first")
        return None
    return found[-1]


def unpack_package(name: str, deb: Path, members: list[str] | None) -> Path:
    """Unpack once into ``raw/<name>`` (a stamp file makes the step resumable)."""
    target = raw_dir() / name
    stamp = target / ".unpacked"
    if stamp.is_file() and stamp.read_text() == deb.name:
        return target
    target.mkdir(parents=True, exist_ok=True)
    if members is None:
        result = _run(["dpkg-deb", "-x", str(deb), str(target)])
        if result.returncode != 0:
            raise RuntimeError(f"dpkg-deb -x {deb.name} failed: {result.stderr.strip()[:200]}")
    else:
        # Only the members we use: 0ad-data unpacks to 3 GB, of which we read one archive.
        tar = subprocess.Popen(["tar", "-x", "--wildcards", "-C", str(target), *members], stdin=subprocess.PIPE)
        deb_proc = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=tar.stdin, check=False)
        tar.stdin.close()
        if tar.wait() != 0 or deb_proc.returncode != 0:
            raise RuntimeError(f"unpacking {deb.name} failed")
    stamp.write_text(deb.name)
    return target


# ---- licences ----------------------------------------------------------------------------

def dep5_licences(copyright_text: str) -> list[tuple[list[str], str]]:
    """(file patterns, licence short name) per ``Files:`` stanza of a DEP-5 copyright file."""
    stanzas = []
    for block in re.split(r"\n\s*\n", copyright_text):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", block, re.M)
        licence = re.search(r"^License:[ \t]*(.+)$", block, re.M)
        if files and licence:
            stanzas.append((files.group(1).split(), licence.group(1).strip()))
    return stanzas


def licence_for(path: str, stanzas: list[tuple[list[str], str]], default: str = "see the package's copyright file") -> str:
    """The last stanza whose pattern matches the end of ``path`` wins (DEP-5 precedence)."""
    found = default
    for patterns, licence in stanzas:
        if any(p == "*" or fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, "*/" + p) for p in patterns):
            found = licence
    return found


def _copyright(root: Path, package: str) -> str:
    path = root / "usr" / "share" / "doc" / package / "copyright"
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


# ---- readers (module-level so that worker processes can receive them) --------------------

def read_file(path: str) -> tuple[np.ndarray, int]:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return data, rate


@lru_cache(maxsize=4)
def _zip_in_process(path: str, pid: int) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def _zip(path: str) -> zipfile.ZipFile:
    # One handle per process: a forked worker sharing its parent's file offset reads garbage.
    return _zip_in_process(path, os.getpid())


def read_zip_member(zip_path: str, member: str) -> tuple[np.ndarray, int]:
    data, rate = sf.read(io.BytesIO(_zip(zip_path).read(member)), dtype="float32", always_2d=True)
    return data, rate


def read_byte_range(path: str, start: int, size: int) -> tuple[np.ndarray, int]:
    with open(path, "rb") as handle:
        handle.seek(start)
        data, rate = sf.read(io.BytesIO(handle.read(size)), dtype="float32", always_2d=True)
    return data, rate


# ---- per-package clip lists --------------------------------------------------------------

def _recording_of(stem: str) -> str:
    """Numbered variants ("cattle_03", "Fire2") are treated as cuts of one recording."""
    return re.sub(r"[_\- ]?\d+[a-z]?$", "", stem, flags=re.I) or stem


def _clip(package: str, original: str, descriptor: str, recording: str, licence: str, load, rules=None, extra=None,
          label: str | None = None) -> RawClip | None:
    label = label or label_for(descriptor, rules)
    if label is None:
        return None
    sound = sound_class(label)
    slug = re.sub(r"[^a-z0-9]+", "-", original.lower()).strip("-")[-80:]
    return RawClip(clip_id=f"{package}-{slug}", label=label, role=sound.role, captions=list(sound.sentences),
                   source=package, original_path=original, licence=licence, recording=f"{package}/{recording}",
                   load=load, extra=extra or {})


def zero_ad_clips(root: Path) -> list[RawClip]:
    archive = root / "usr/share/games/0ad/mods/public/public.zip"
    licence = "CC-BY-SA-3.0 (Wildfire Games)"
    clips = []
    for member in sorted(_zip(str(archive)).namelist()):
        if not member.startswith("audio/") or not member.lower().endswith(AUDIO_SUFFIXES):
            continue
        stem = member.rsplit(".", 1)[0]
        clip = _clip("0ad-data", member, member, _recording_of(stem), licence, partial(read_zip_member, str(archive), member))
        if clip:
            clips.append(clip)
    return clips


def opensfx_entries(cat_path: Path) -> list[tuple[str, int, int]]:
    """(title, byte offset, size) of each sound in an OpenTTD .cat archive.

    Layout: a table of (uint32 offset, uint32 size) pairs, little-endian, whose first offset
    also gives the table length; the high bit of an offset is a flag and is masked off. Each
    entry starts with a length byte and a NUL-terminated title, followed by a RIFF WAV.
    """
    data = cat_path.read_bytes()
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    entries = []
    for i in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        name_length = data[offset]
        title = data[offset + 1 : offset + 1 + name_length].rstrip(b"\0").decode("utf-8", errors="replace")
        body = offset + 1 + name_length
        entries.append((title, body, size - 1 - name_length))
    return entries


def opensfx_clips(root: Path) -> list[RawClip]:
    cat = root / "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
    clips = []
    for index, (title, start, size) in enumerate(opensfx_entries(cat)):
        name = re.match(r'"([^"]*)"', title)
        name = name.group(1) if name else title
        licence = re.search(r"License:\s*([^.]+(?:\.\d[^.]*)?)", title)
        original = re.search(r'Original "([^"]+)"', title)
        if OPENSFX_LABELS.get(name) is None:  # jingles, two-event sounds, placeholders
            continue
        clip = _clip("openttd-opensfx", f"opensfx.cat#{index} {name}", title, original.group(1) if original else name,
                     licence.group(1).strip() if licence else "see opensfx license.txt",
                     partial(read_byte_range, str(cat), start, size), extra={"title": title}, label=OPENSFX_LABELS[name])
        if clip:
            clips.append(clip)
    return clips


def folder_clips(package: str, root: Path, folder: str, stanzas, labels: dict[str, str] | None = None,
                 licence: str | None = None) -> list[RawClip]:
    """The audio files under ``folder``, labelled by the path rules, or with ``labels`` by their
    stem in it (files it does not name are left out); licensed by ``stanzas`` unless ``licence``
    is given."""
    clips = []
    for path in sorted((root / folder).rglob("*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES or (labels is not None and path.stem not in labels):
            continue
        relative = str(path.relative_to(root))
        clip = _clip(package, relative, relative, _recording_of(path.stem), licence or licence_for(relative, stanzas),
                     partial(read_file, str(path)), label=(labels or {}).get(path.stem))
        if clip:
            clips.append(clip)
    return clips


def drumkit_clips(root: Path, stanzas) -> list[RawClip]:
    clips = []
    for xml_path in sorted((root / "usr/share/hydrogen/data/drumkits").glob("*/drumkit.xml")):
        kit = xml_path.parent
        tree = ET.parse(xml_path).getroot()
        tag = lambda e: e.tag.rsplit("}", 1)[-1]  # noqa: E731 - namespaced and plain XML both occur
        kit_licence = next((e.text.strip() for e in tree.iter() if tag(e) == "license" and e.text and e.text.strip()), None)
        for instrument in (e for e in tree.iter() if tag(e) == "instrument"):
            name = next((e.text or "" for e in instrument if tag(e) == "name"), "")
            ident = next((e.text or "" for e in instrument if tag(e) == "id"), name)
            for file_element in (e for e in instrument.iter() if tag(e) == "filename" and e.text):
                sample = kit / file_element.text.strip()
                if not sample.is_file():
                    continue
                relative = str(sample.relative_to(root))
                # Debian's copyright file names the kit archives; it was checked, so it wins over drumkit.xml.
                licence = licence_for(f"drumkits/{kit.name}.h2drumkit", stanzas, default=kit_licence or "see the package's copyright file")
                clip = _clip("hydrogen-drumkits", relative, f"{name} {sample.stem}", f"{kit.name}/{ident}",
                             licence, partial(read_file, str(sample)),
                             rules=DRUM_RULES, extra={"kit": kit.name, "instrument": name})
                if clip:
                    clips.append(clip)
    return clips


# Tux Paint plays a stamp's sound when the stamp is chosen: the animal's call, the tool at work.
# Labelled by hand by stamp name; stamps whose sound is not clearly one class of the ontology
# (fireworks, a fire truck's siren, a whale, insects) and the spoken descriptions are left out.
TUXPAINT_LABELS: dict[str, str] = {
    "dog": "dog", "pig": "pig", "pig_golden": "pig", "pig_golden2": "pig", "cow": "cow", "cow_white": "cow",
    "bull": "cow", "goat": "goat", "mountaingoat": "goat", "sheep": "sheep", "sheep_lamb": "sheep", "ram": "sheep",
    "horse": "horse", "camel": "camel", "dromedary": "camel", "lion": "lion", "elephant": "elephant",
    "hen": "chicken", "rooster": "chicken", "blackbird": "bird", "crow": "bird", "cuckoo": "bird", "lark": "bird",
    "owl": "bird", "seagull": "bird", "quetzal": "bird", "tucan": "bird", "chimp": "monkey",
    "hammer": "hammer", "saw": "saw", "camera_35mm": "camera", "cymbal_crash": "cymbal",
    "drum_tomtom_floor": "tom_drum", "violin": "violin", "cello": "cello", "lightningbolt": "thunder",
}


# The Battle for Wesnoth's sounds, by file stem; weapon sounds whose class would be a guess
# (mace, axe swings, magic), UI sounds and the hoof-beats (the horse class is its call) are left out.
WESNOTH_LABELS: dict[str, str] = {
    "birds1": "bird", "birds2": "bird", "birds3": "bird", "campfire": "fire", "fire": "fire", "ship": "ship",
    "bow": "arrow", "bow-puny": "arrow", "crossbow": "arrow", "sword-1": "sword", "explosion": "explosion",
    "gunshot": "gunshot", "thunderstick": "gunshot", "horse-hit-1": "horse", "horse-hit-2": "horse",
    "horse-hit-3": "horse", "horse-die": "horse", "dagger-swish": "whoosh", "throw-1": "whoosh",
    "throw-2": "whoosh", "throw-3": "whoosh", "throw-4": "whoosh", "club": "impact", "fist": "impact",
    **{f"{who}-{how}-{i}": "scream" for who in ("human", "human-old", "human-female") for how in ("die", "hit")
       for i in range(1, 6)},
}
WESNOTH_LICENCE = "GPL-2+ (The Battle for Wesnoth; see the package's copyright file)"


def package_clips(package: str, root: Path) -> list[RawClip]:
    stanzas = dep5_licences(_copyright(root, package))
    if package == "0ad-data":
        return zero_ad_clips(root)
    if package == "openttd-opensfx":
        return opensfx_clips(root)
    if package == "lincity-ng-data":
        return folder_clips(package, root, "usr/share/games/lincity-ng/sounds", stanzas)
    if package == "hydrogen-drumkits":
        return drumkit_clips(root, stanzas)
    if package == "sound-theme-freedesktop":
        return folder_clips(package, root, "usr/share/sounds/freedesktop/stereo", stanzas)
    if package == "tuxpaint-stamps-default":
        return folder_clips(package, root, TUXPAINT_STAMPS, stanzas, labels=TUXPAINT_LABELS)
    if package == "wesnoth-1.16-data":  # its copyright file is not DEP-5
        return folder_clips(package, root, WESNOTH_SOUNDS, stanzas, labels=WESNOTH_LABELS, licence=WESNOTH_LICENCE)
    raise ValueError(f"no reader for package {package!r}")


def debian_raw_clips(say: Callable[[str], None] = print,
                     packages: dict[str, list[str] | None] | None = None) -> tuple[list[RawClip], dict[str, str]]:
    """Labelled clips and licence notes of ``packages`` (default ``PACKAGES``)."""
    clips: list[RawClip] = []
    notes: dict[str, str] = {}
    for package, members in (PACKAGES if packages is None else packages).items():
        deb = download_package(package, say)
        if deb is None:
            continue
        root = unpack_package(package, deb, members)
        found = package_clips(package, root)
        say(f"{package}: {len(found)} labelled clips ({deb.name})")
        clips += found
        notes[package] = f"Debian package `{package}` ({deb.name}); licences per clip below, from " \
                         f"/usr/share/doc/{package}/copyright and the package's own licence notes."
    return clips, notes
