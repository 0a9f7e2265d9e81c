"""Training recipes by name: ``foleyflow train NAME`` and a config's ``"recipe"`` key look here.

Entries are "module:factory" strings imported on demand, so listing recipes never imports torch
models. A factory takes the config's ``recipe_options`` object and returns a ``Recipe``. A config
may also name any importable factory directly as "package.module:factory" (your own recipe).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Mapping

from foleyflow.errors import InputError

if TYPE_CHECKING:  # the Recipe module imports torch; the CLI must start without it
    from foleyflow.training.recipe import Recipe

RECIPES: dict[str, str] = {
    "vae": "foleyflow.training.recipes.codec:VaeRecipe",  # the codec (issue 4)
    "vocoder": "foleyflow.training.recipes.codec:VocoderRecipe",
    "toy": "foleyflow.training.recipes.toy:ToyRecipe",
    "tta": "foleyflow.training.recipes.tta:TTARecipe",
    "edit": "foleyflow.training.recipes.edit:EditRecipe",
    "localise": "foleyflow.training.recipes.localise:LocaliseRecipe",  # the editor's localiser (issue 9)
    "tagger": "foleyflow.evaluation.recipes:TaggerRecipe",  # in-world evaluation backbones
    "clap": "foleyflow.evaluation.recipes:ClapRecipe",
    "distill": "foleyflow.training.recipes.distill:DistillRecipe",
    "distill-edit": "foleyflow.training.recipes.distill_edit:EditDistillRecipe",
}


def build_recipe(name: str, options: Mapping[str, Any]) -> "Recipe":
    target = RECIPES.get(name, name)
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise InputError(f"unknown recipe {name!r} (known: {', '.join(sorted(RECIPES))}, or 'package.module:factory')")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise InputError(f"recipe {name!r}: cannot import {target} ({error})") from None
    return factory(dict(options))
