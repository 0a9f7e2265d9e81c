"""Data: the sound corpus, scene and triplet recipes, manifests and the editing data set (SPEC 3)."""
