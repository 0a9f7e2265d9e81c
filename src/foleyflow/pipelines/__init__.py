"""User-facing pipelines: Editor, Generator.

A pipeline wires networks (``foleyflow.models``) and samplers (``foleyflow.diffusion``) into
one call on audio files or arrays: ``Editor.from_pretrained("default").edit(path, "Add ...")``.
"""
