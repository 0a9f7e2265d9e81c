"""One training recipe per model, each written against ``foleyflow.training.recipe.Recipe``."""
