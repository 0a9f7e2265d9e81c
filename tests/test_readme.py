"""The README's Python example runs as printed (from the repository's root) and writes its files."""

import os
import re
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)  # "from the repository's root": its examples/ is here too
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    source, removed = sf.info(str(ROOT / "examples" / "shore_pig.wav")), sf.info("pig_removed.wav")
    assert removed.frames == source.frames and removed.samplerate == 16000
    assert sf.info("cow.wav").frames == round(5.12 * 16000)
    assert namespace["mel"].shape[0] == 1 and namespace["mel"].shape[2] == 64
    assert os.path.getsize("pig_removed.wav") > 0
