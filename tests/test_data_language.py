"""Ontology rules, caption composition, instruction phrasing and event counting."""

from __future__ import annotations

import numpy as np
import pytest

from foleyflow.data.events import count_events, count_events_rules
from foleyflow.data.language import compose_caption, definite, instruction
from foleyflow.data.ontology import CLASSES, DRUM_RULES, OPENSFX_LABELS, ROLES, label_for


@pytest.mark.parametrize("descriptor, label", [
    ("audio/actor/fauna/animal/cattle_03.ogg", "cow"),
    ("audio/ambient/weather/rain_01.ogg", "rain"),
    ("audio/ambient/water/river_fast_02.ogg", "river"),
    ("audio/attack/weapon/swordhit_12a.ogg", "sword"),
    ("audio/voice/latin/civ/civ_female_attack_1.ogg", "female_shout"),
    ("audio/music/menu_track.ogg", None),
    ("audio/interface/select/building/sel_house.ogg", None),
    ("usr/share/games/lincity-ng/sounds/RailTrain2.wav", "train"),
    ("usr/share/games/lincity-ng/sounds/WindowOpen.wav", None),
    ("usr/share/sounds/freedesktop/stereo/phone-incoming-call.oga", "phone"),
])
def test_label_rules(descriptor, label):
    assert label_for(descriptor) == label


def test_drum_rules_and_opensfx_labels_name_real_classes():
    assert label_for("Kick BD_06", DRUM_RULES) == "kick_drum"
    assert label_for("Closed HH hihat-closed-1", DRUM_RULES) == "hi_hat"
    assert label_for("Ride Jazz ride-cup", DRUM_RULES) == "cymbal"
    used = {label for label in OPENSFX_LABELS.values() if label} | {label for _, label in DRUM_RULES}
    assert used <= set(CLASSES)


def test_ontology_is_complete():
    assert 40 <= len(CLASSES) <= 100
    for sound in CLASSES.values():
        assert sound.role in ROLES and len(sound.sentences) >= 2 and len(sound.phrases) >= 2


def test_compose_caption():
    assert compose_caption(["Rain falls", "A cow moos"], ["bed", "event"]) == "Rain falls while a cow moos"
    assert compose_caption(["A cow moos", "A dog barks", "A bell rings"], ["event"] * 3) == "A cow moos, a dog barks and a bell rings"
    assert compose_caption(["Wind blows"], ["bed"]) == "Wind blows"


def test_instructions_name_the_event():
    rng = np.random.default_rng(0)
    assert definite("a cow mooing") == "the cow mooing" and definite("applause") == "the applause"
    seen = {instruction("add", "a dog barking", None, rng) for _ in range(40)}
    assert len(seen) >= 3 and all("dog barking" in s for s in seen)
    remove = instruction("remove", "a dog barking", None, rng)
    assert "dog barking" in remove and "a dog" not in remove
    replace = instruction("replace", "a dog barking", "rain falling", rng)
    assert replace.index("dog") < replace.index("rain")


@pytest.mark.parametrize("caption, count", [
    ("A dog barks", 1), ("A dog barks and a man speaks", 2), ("Rain falls while a cow moos and a dog barks", 3),
    ("A dog barks and then barks again", 1), ("A man talking as a crowd applauds, then a car horn honks", 3),
])
def test_rule_based_event_count(caption, count):
    assert count_events_rules(caption) == count


def test_llm_hook_is_off_by_default(monkeypatch):
    monkeypatch.delenv("FOLEYFLOW_LLM_URL", raising=False)
    assert count_events("A dog barks and a man speaks") == 2


def test_llm_hook_failure_is_one_line_error(monkeypatch):
    from foleyflow.errors import FoleyflowError

    monkeypatch.setenv("FOLEYFLOW_LLM_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(FoleyflowError, match="event-counting LLM"):
        count_events("A dog barks")


def test_instruction_task_reads_the_leading_verb():
    from foleyflow.data.language import TEMPLATES, instruction_task

    for task, templates in TEMPLATES.items():
        for template in templates:
            assert instruction_task(template.format(a="a dog barking", the_a="the dog barking", b="rain")) == task
    assert instruction_task("  get RID of the beeps") == "remove" and instruction_task("Put a bell here") == "add"
    assert instruction_task("Make it louder") is None and instruction_task("Addition of rain") is None and instruction_task("") is None


def test_a_replace_instruction_becomes_the_removal_of_its_old_sound():
    from foleyflow.data.language import REPLACE_TEMPLATES, TEMPLATES, instruction_task, removal_instruction, replaced_sound

    for template in REPLACE_TEMPLATES:
        text = template.format(a="a dog barking", the_a="the dog barking", b="rain falling")
        removal = removal_instruction(text)
        assert removal in ("Remove the dog barking", "Remove the sound of a dog barking"), text
        assert instruction_task(removal) == "remove"
    assert replaced_sound("swap  birds with rain") == "birds" and removal_instruction("swap birds with rain") == "Remove the birds"
    # The verb's own connector, not the first connector-like word: "into" belongs to the old sound here.
    assert removal_instruction("Replace the water running into a sink with rain") == "Remove the water running into a sink"
    for task in ("add", "remove"):
        for template in TEMPLATES[task]:
            assert removal_instruction(template.format(a="a dog barking", the_a="the dog barking")) is None
    assert removal_instruction("Change it") is None and removal_instruction("Replace") is None
