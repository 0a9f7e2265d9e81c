import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import foleyflow

SRC = str(Path(foleyflow.__file__).resolve().parents[1])


def test_version_and_help(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"foleyflow {foleyflow.__version__}"
    code, out, _ = cli("--help")
    assert code == 0 and "info" in out and "spectrogram" in out


def test_info_lists_versions_device_and_models(cli):
    code, out, _ = cli("info")
    assert code == 0
    assert "torch" in out and "device: " in out and "shipped model" in out
    # every shipped model says what it is (no "?"): the editor by its objective, localiser and remover
    assert "?" not in "".join(line for line in out.splitlines() if line.startswith("shipped model"))
    assert "Editor (flow, localiser, 4 removers averaged)" in out and "InworldClap" in out


def test_model_class_reads_each_config_kind():
    from foleyflow.info import model_class

    assert model_class({"_class_name": "AutoencoderKL", "class": "x"}) == "AutoencoderKL"
    assert model_class({"model_type": "t5"}) == "t5"
    assert model_class({"class": "InworldTagger"}) == "InworldTagger"
    assert model_class({"objective": "ddpm", "mask": "none"}) == "Editor (ddpm)"
    ensemble = {"objective": "flow", "mask": "localiser", "localiser": {"width": 8}, "remover": {"width": 8, "members": 3}}
    assert model_class(ensemble) == "Editor (flow, localiser, 3 removers averaged)"
    assert model_class({}) == "?"


def test_demo_writes_a_png_per_example_without_an_editor(cli, tmp_path, monkeypatch):
    import foleyflow.models.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "list_shipped_models", lambda: {})
    examples = tmp_path / "examples"
    examples.mkdir()
    sf.write(examples / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)
    code, out, err = cli("demo", "--out", str(tmp_path / "out"), "--examples", str(examples))
    assert code == 0, err
    png = tmp_path / "out" / "a_logmel.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "a.wav: 1.00 s -> log-mel 100 frames x 64 bins" in out


def test_demo_runs_on_the_bundled_examples(cli, tmp_path):
    from foleyflow.models.checkpoint import list_shipped_models

    code, out, err = cli("demo", "--out", str(tmp_path))
    assert code == 0, err
    assert list(tmp_path.glob("*.png"))
    # an editor is shipped, so the demo edits: one add, remove and replace per bundled clip
    # (the no-editor branch is test_demo_writes_a_png_per_example_without_an_editor)
    assert "editor" in list_shipped_models()
    clips = [p for p in (Path(SRC).parent / "examples").glob("*.wav")]
    assert clips and len(list(tmp_path.glob("*_add.wav"))) == len(clips) and "s per edit" in out
    for task in ("add", "remove", "replace"):
        assert len(list(tmp_path.glob(f"*_{task}.wav"))) == len(clips), task


def _bad_inputs(tmp_path):
    (tmp_path / "text.wav").write_bytes(b"hello, not audio" * 20)
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "zero.wav", np.zeros(0), 16000)
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1]), 16000, subtype="FLOAT")
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 3), 16000)
    return {
        "text.wav": "not a readable audio file",
        "empty.wav": "empty",
        "zero.wav": "no samples",
        "nan.wav": "NaN or infinite",
        "long.wav": "longer than the limit",
        "missing.wav": "no such file",
    }


def test_each_bad_input_is_one_line_exit_2_and_no_output(cli, tmp_path):
    for name, reason in _bad_inputs(tmp_path).items():
        out_png = tmp_path / f"{name}.png"
        code, _, err = cli("spectrogram", str(tmp_path / name), "-o", str(out_png), "--max-seconds", "2")
        assert code == 2, name
        assert err.count("\n") == 1 and err.startswith("foleyflow: error: ") and reason in err, (name, err)
        assert not out_png.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files either


@pytest.mark.parametrize("name", ["o.svg", "o.jpg", "o"])
def test_a_figure_named_other_than_png_is_refused_before_the_input_is_read(cli, tmp_path, name):
    # the input does not exist either: the output's suffix is checked first, while parsing
    code, _, err = cli("spectrogram", str(tmp_path / "missing.wav"), "-o", str(tmp_path / name))
    assert code == 2 and err.count("\n") == 1 and "figures are written as PNG; end the name in .png" in err
    assert list(tmp_path.iterdir()) == []


def test_figures_are_png_whatever_the_case_of_the_suffix(tmp_path):
    from foleyflow.errors import InputError
    from foleyflow.plotting import save_figure_png, save_spectrograms_png

    out = save_spectrograms_png(tmp_path / "mel.PNG", [("noise", np.zeros((20, 64)))])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.pyplot as plt

    figure = plt.figure()
    with pytest.raises(InputError, match="end the name in .png"):
        save_figure_png(figure, tmp_path / "curve.pdf", dpi=50)
    assert not plt.fignum_exists(figure.number)  # closed even when refused
    assert [path.name for path in tmp_path.iterdir()] == ["mel.PNG"]


@pytest.mark.parametrize("args", [("nope",), ("spectrogram",), ("spectrogram", "x.wav", "--bogus"), ("--max-seconds",)])
def test_bad_usage_is_one_line_exit_2(cli, args):
    code, _, err = cli(*args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("foleyflow: error: ")


def test_debug_shows_the_traceback(cli, tmp_path):
    (tmp_path / "t.wav").write_bytes(b"not audio" * 10)
    from foleyflow.errors import InputError

    with pytest.raises(InputError):
        cli("--debug", "spectrogram", str(tmp_path / "t.wav"), "-o", str(tmp_path / "o.png"))


def test_unexpected_failures_exit_1_without_traceback(cli, tmp_path, monkeypatch):
    import foleyflow.audio.io as io

    def broken(*_, **__):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(io, "load_audio", broken)
    code, _, err = cli("spectrogram", "x.wav", "-o", str(tmp_path / "o.png"))
    assert code == 1 and "RuntimeError: disk on fire" in err and "Traceback" not in err


def test_the_installed_entry_point_runs_as_a_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-m", "foleyflow", "spectrogram", "/nonexistent.wav", "-o", str(tmp_path / "o.png")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "foleyflow: error: /nonexistent.wav: no such file"
    assert "Traceback" not in done.stderr


def test_warnings_are_one_line_on_stderr(cli, monkeypatch):
    import warnings

    import foleyflow.info as info

    def noisy():
        warnings.warn("first line\nsecond line", UserWarning)
        return {"foleyflow": "x", "python": "3", "platform": "p", "device": "cpu", "libraries": {}, "shipped_models": {}}

    monkeypatch.setattr(info, "system_info", noisy)
    code, out, err = cli("info")
    assert code == 0 and err.strip() == "foleyflow: warning: first line" and "foleyflow x" in out
