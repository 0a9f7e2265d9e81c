"""Words for scenes and edits: composed captions and varied instruction phrasings (SPEC 3).

Captions are composed from the parts' sentences: beds first, then the events joined with
"and" ("Rain falls while a cow moos and a dog barks"). Instructions name an event by one
of its class's noun phrases, in one of several phrasings per task, chosen with the
scene's random generator so a build is reproducible.
"""

from __future__ import annotations

import re

import numpy as np

ADD_TEMPLATES = ("Add {a}", "Add the sound of {a}", "Add {a} to the recording", "Insert {a}", "Mix in {a}")
REMOVE_TEMPLATES = ("Remove {the_a}", "Remove the sound of {a}", "Take out {the_a}", "Delete {the_a}", "Get rid of {the_a}")
REPLACE_TEMPLATES = ("Replace {the_a} with {b}", "Swap {the_a} for {b}", "Change {the_a} into {b}",
                     "Replace the sound of {a} with the sound of {b}")
TEMPLATES = {"add": ADD_TEMPLATES, "remove": REMOVE_TEMPLATES, "replace": REPLACE_TEMPLATES}
# The leading verbs of the phrasings above (and a few a user would type), longest first.
TASK_VERBS = (("get rid of", "remove"), ("take out", "remove"), ("take away", "remove"), ("mix in", "add"),
              ("remove", "remove"), ("delete", "remove"), ("erase", "remove"), ("mute", "remove"),
              ("replace", "replace"), ("swap", "replace"), ("change", "replace"),
              ("add", "add"), ("insert", "add"), ("put", "add"), ("include", "add"))


def lower_first(text: str) -> str:
    """Lower-case a sentence's first letter for use inside another sentence (keeps "I", acronyms)."""
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


def definite(phrase: str) -> str:
    """"a cow mooing" -> "the cow mooing"; "applause" -> "the applause"."""
    words = phrase.split(" ", 1)
    if words[0].lower() in ("a", "an") and len(words) == 2:
        return "the " + words[1]
    if words[0].lower() == "the":
        return phrase
    return "the " + phrase


def _join(clauses: list[str]) -> str:
    if len(clauses) <= 1:
        return "".join(clauses)
    return ", ".join(clauses[:-1]) + " and " + clauses[-1]


def compose_caption(sentences: list[str], roles: list[str]) -> str:
    """One caption for a mix: "<beds> while <events>", or the events alone, or the beds alone."""
    beds = [s.rstrip(".") for s, r in zip(sentences, roles) if r == "bed"]
    events = [s.rstrip(".") for s, r in zip(sentences, roles) if r != "bed"]
    if not beds and not events:
        return "Silence"
    if beds and events:
        text = _join(beds) + " while " + _join([lower_first(e) for e in events])
    else:
        parts = beds or events
        text = _join([parts[0]] + [lower_first(p) for p in parts[1:]])
    return text[:1].upper() + text[1:]


def instruction(task: str, phrase_a: str, phrase_b: str | None, rng: np.random.Generator) -> str:
    """An instruction for ``task`` naming the edited event(s) by their noun phrases."""
    template = TEMPLATES[task][int(rng.integers(len(TEMPLATES[task])))]
    text = template.format(a=phrase_a, the_a=definite(phrase_a), b=phrase_b or "")
    return text[:1].upper() + text[1:]


def instruction_task(text: str) -> str | None:
    """"add", "remove" or "replace" from an instruction's leading verb ("Get rid of the beeps" ->
    "remove"); None when it starts with none of them."""
    words = " ".join(text.lower().split())
    for verb, task in TASK_VERBS:
        if words == verb or words.startswith(verb + " "):
            return task
    return None


# "Replace X with Y", "Swap X for Y", "Change X into Y" (and the connectors a user would type):
# the verb, then the replaced sound up to the verb's own connector, then the new sound.
_REPLACE_CONNECTORS = {"replace": "with|by", "swap": "for|with", "change": "into|to"}


def replaced_sound(text: str) -> str | None:
    """The sound a replace instruction takes out ("Swap the siren for rain" -> "the siren"), read
    up to the first connector of its verb; None when ``text`` is no replace of that form."""
    words = " ".join(text.split())
    for verb, connectors in _REPLACE_CONNECTORS.items():
        match = re.match(rf"{verb}\s+(.+?)\s+(?:{connectors})\s+\S", words, flags=re.IGNORECASE)
        if match:
            return match.group(1)
    return None


def removal_instruction(text: str) -> str | None:
    """The remove instruction for the sound a replace takes out ("Replace the siren with rain" ->
    "Remove the siren"): where that sound is, is where a replace acts; None for other instructions."""
    old = replaced_sound(text)
    return None if old is None else "Remove " + definite(old)
