"""One training recipe per model (the ``Recipe`` contract of ``foleyflow.training.recipe``)."""
