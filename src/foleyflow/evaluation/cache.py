"""Feature cache: one .npz per (file content, backbone, settings).

The key hashes the file's bytes (not its name or mtime), the backbone's fingerprint (its
weights' hash and front-end settings) and the extractor settings, so a changed file, a
different checkpoint or a different crop never reuses stale features (the toolbox's trap).
Caches live under $FOLEYFLOW_HOME/features; ``enabled=False`` (``--no-cache``) bypasses them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from foleyflow.atomic import atomic_path

CHUNK = 1 << 20


def foleyflow_home() -> Path:
    return Path(os.environ.get("FOLEYFLOW_HOME", "~/.cache/foleyflow")).expanduser()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureCache:
    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else foleyflow_home() / "features"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def path_for(self, audio_path: str | os.PathLike, fingerprint: str) -> Path:
        return self.root / fingerprint / f"{file_sha256(audio_path)}.npz"

    def get_or_compute(
        self, audio_path: str | os.PathLike, fingerprint: str, compute: Callable[[], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """Cached features of ``audio_path`` for ``fingerprint``, computing and storing on a miss."""
        if not self.enabled:
            self.misses += 1
            return dict(compute())
        path = self.path_for(audio_path, fingerprint)
        if path.is_file():
            try:
                with np.load(path) as stored:
                    features = {key: stored[key] for key in stored.files}
                self.hits += 1
                return features
            except (OSError, ValueError):
                pass  # a damaged cache entry is recomputed and overwritten
        self.misses += 1
        features = dict(compute())
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **features)
        return features
