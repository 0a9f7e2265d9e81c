"""Counting the sound events a caption describes (SPEC 3, step 1).

The paper asked an LLM. foleyflow counts with rules by default (offline, deterministic) and
can ask an OpenAI-compatible chat endpoint instead when ``FOLEYFLOW_LLM_URL`` is set
(``FOLEYFLOW_LLM_MODEL`` names the model, ``FOLEYFLOW_LLM_KEY`` is sent as a bearer token).

The rule-based counter splits a caption into clauses at the words that join events in
AudioCaps-style captions ("and", "while", "as", "then", "followed by", "with", commas...)
and counts the clauses that contain a sound word. A clause repeating an earlier sound word
("a dog barks and then barks again") does not add an event.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request

from foleyflow.errors import FoleyflowError

_JOINERS = r",|;|\band then\b|\bthen\b|\bfollowed by\b|\bwhile\b|\bas\b|\bwith\b|\band\b|\bbefore\b|\bafter\b|\bover\b|\bamid\b|\bduring\b"
# Verbs and nouns that name a sound source or a sound; a clause without one ("in the distance")
# is a modifier, not an event.
_SOUND_WORDS = re.compile(
    r"\b(\w+ing|\w+s|speech|talk\w*|voice\w*|music|noise|sound\w*|rain|wind|water|thunder|engine|"
    r"siren|bell|horn|applause|laugh\w*|cry|crie\w*|footsteps|birds?|dogs?|cats?|man|woman|child|baby|people|crowd)\b"
)
_REPEAT = re.compile(r"\bagain\b|\brepeatedly\b|\bseveral times\b|\btwice\b")
_STOP = {"is", "was", "as", "its", "this", "has", "his", "hers", "us", "always", "various", "series", "during", "nothing", "something"}


def _clauses(caption: str) -> list[str]:
    return [c.strip() for c in re.split(_JOINERS, caption.lower()) if c and c.strip()]


def _sound_words(clause: str) -> set[str]:
    return {w for w in _SOUND_WORDS.findall(clause) if w not in _STOP}


def count_events_rules(caption: str) -> int:
    """Rule-based event count of a caption (at least 1 for a non-empty caption)."""
    seen: set[str] = set()
    count = 0
    for clause in _clauses(caption):
        words = _sound_words(clause)
        if not words or _REPEAT.search(clause) and words & seen:
            continue
        if words <= seen:
            continue
        seen |= words
        count += 1
    return max(count, 1 if caption.strip() else 0)


LLM_PROMPT = ("How many distinct sound events does this audio caption describe? "
              "Answer with one integer only.\nCaption: {caption}")


def count_events_llm(caption: str, url: str, model: str, key: str | None = None, timeout: float = 30.0) -> int:
    """Ask an OpenAI-compatible ``/chat/completions`` endpoint for the event count."""
    body = json.dumps({"model": model, "temperature": 0,
                       "messages": [{"role": "user", "content": LLM_PROMPT.format(caption=caption)}]}).encode()
    request = urllib.request.Request(url.rstrip("/") + "/chat/completions", data=body,
                                     headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())["choices"][0]["message"]["content"]
    except (OSError, KeyError, IndexError, json.JSONDecodeError) as error:
        raise FoleyflowError(f"event-counting LLM at {url} failed: {error}") from None
    match = re.search(r"\d+", answer)
    if not match:
        raise FoleyflowError(f"event-counting LLM gave no number: {answer[:80]!r}")
    return int(match.group())


def count_events(caption: str) -> int:
    """The event count: the LLM when ``FOLEYFLOW_LLM_URL`` is set, the rules otherwise."""
    url = os.environ.get("FOLEYFLOW_LLM_URL")
    if url:
        return count_events_llm(caption, url, os.environ.get("FOLEYFLOW_LLM_MODEL", "gpt-4o-mini"), os.environ.get("FOLEYFLOW_LLM_KEY"))
    return count_events_rules(caption)
