"""Where foleyflow keeps data: everything under ``$FOLEYFLOW_HOME`` (default ``~/.cache/foleyflow``).

    $FOLEYFLOW_HOME/debs/               downloaded Debian packages (``apt-get download``)
    $FOLEYFLOW_HOME/raw/<package>/      their unpacked files (``dpkg-deb -x``)
    $FOLEYFLOW_HOME/corpus/             the processed corpus: clips.jsonl, audio/, ATTRIBUTION.md
    $FOLEYFLOW_HOME/datasets/editing/   the RFM-Edit triplet set: scenes.jsonl, triplets.jsonl, build.json
"""

from __future__ import annotations

import os
from pathlib import Path


def foleyflow_home() -> Path:
    return Path(os.environ.get("FOLEYFLOW_HOME", Path.home() / ".cache" / "foleyflow")).expanduser()


def default_corpus_dir() -> Path:
    return foleyflow_home() / "corpus"


def default_editing_dir() -> Path:
    return foleyflow_home() / "datasets" / "editing"


def debs_dir() -> Path:
    return foleyflow_home() / "debs"


def raw_dir() -> Path:
    return foleyflow_home() / "raw"
