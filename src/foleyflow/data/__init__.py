"""Data: the sound corpus, scene and triplet recipes, manifests and the editing data set (SPEC 3).

Modules:
    paths        where the corpus and the editing set live ($FOLEYFLOW_HOME)
    ontology     the curated classes (role, captions, phrases) and the file -> class rules
    manifest     the corpus manifest (clips.jsonl) and JSON-lines helpers
    corpus       processing raw sounds into clips, splitting by recording, ATTRIBUTION.md
    sources/     Debian packages, espeak-ng and fluidsynth renderers, the procedural source
    fetch        `data fetch`: all sources -> one corpus
    ingest       `data ingest`: an AudioCaps-style CSV + audio folder -> a corpus
    events       counting the events of a caption (rules, or an OpenAI-compatible LLM)
    recipes      parts, scenes, the one mixing function, edit regions and masks
    language     composed captions and instruction phrasings
    builder      `data build`: scenes, six triplets each, CLAP filter, task balance
    clap_filter  the pluggable CLAP scorer interface
    datasets     ClipDataset and TripletDataset (torch)
    materialize  optional WAVs of every mix
    stats        `data stats`
"""

from importlib import import_module

# Public names, imported on first use so that `foleyflow data ...` does not pay for torch.
_EXPORTS = {
    "CLAP_THRESHOLD": "clap_filter", "ClapScorer": "clap_filter",
    "ClipDataset": "datasets", "TripletDataset": "datasets",
    "NUM_SAMPLES": "recipes", "edit_mask": "recipes",
    "default_corpus_dir": "paths", "default_editing_dir": "paths", "foleyflow_home": "paths",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"foleyflow.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'foleyflow.data' has no attribute {name!r}")
