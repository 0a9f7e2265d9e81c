"""Sources of raw sounds for the corpus: Debian packages, speech and instrument renderers, and
a procedural source. Each yields ``foleyflow.data.corpus.RawClip`` objects."""
