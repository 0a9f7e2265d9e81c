"""`foleyflow eval` end to end on tiny in-world backbones and a few short clips."""

import json

import numpy as np
import pytest
import torch

from foleyflow.audio.io import write_audio
from foleyflow.evaluation.backbones.inworld import ClapModel, build_tagger, save_clap, save_tagger

SMALL = (2, 2, 4, 4, 4, 8)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    torch.manual_seed(0)
    save_tagger(root / "tagger", build_tagger(["dog", "rain", "siren"], SMALL).eval(), ["dog", "rain", "siren"])
    save_clap(root / "clap", ClapModel(embed_dim=8, channels=SMALL))
    return root


def _clips(folder, names, seed, seconds=1.0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index, name in enumerate(names):
        t = np.arange(int(16_000 * seconds)) / 16_000
        audio = 0.3 * np.sin(2 * np.pi * (200 + 150 * index) * t) + 0.05 * rng.normal(size=t.size)
        write_audio(folder / f"{name}.wav", audio)
    return folder


NAMES = [f"clip{i:02d}" for i in range(12)]


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny convolutions on a shared 2-core machine run far faster on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_eval_prints_the_table_and_writes_json(tmp_path, backbones, cli, monkeypatch):
    monkeypatch.setenv("FOLEYFLOW_HOME", str(tmp_path / "home"))
    gen = _clips(tmp_path / "gen", NAMES, seed=1)
    ref = _clips(tmp_path / "ref", NAMES, seed=2)
    (tmp_path / "captions.csv").write_text("name,caption\n" + "".join(f"{n}.wav,a tone number {i}\n" for i, n in enumerate(NAMES)))
    (tmp_path / "times.csv").write_text("name,seconds\n" + "".join(f"{n},{1 + i / 10}\n" for i, n in enumerate(NAMES)))
    args = ["eval", "--generated", str(gen), "--reference", str(ref), "--captions", str(tmp_path / "captions.csv"),
            "--times", str(tmp_path / "times.csv"), "--backbone", f"tagger:{backbones / 'tagger'}",
            "--backbone", f"clap:{backbones / 'clap'}", "--bootstrap", "20", "--json", str(tmp_path / "out.json")]
    code, out, err = cli(*args)
    assert code == 0, err
    for column in ("FD ↓", "FAD ↓", "KL ↓", "IS ↑", "CLAP ↑", "time (s) ↓"):
        assert column in out
    report = json.loads((tmp_path / "out.json").read_text())
    figures = report["figures"]
    assert set(figures) == {"FD", "FAD", "KL", "IS", "CLAP", "time (s)"}
    assert figures["time (s)"]["value"] == pytest.approx(np.mean([1 + i / 10 for i in range(12)]))
    assert figures["KL"]["ci95_low"] <= figures["KL"]["value"] <= figures["KL"]["ci95_high"]
    assert -1.0 <= figures["CLAP"]["value"] <= 1.0
    assert set(report["per_clip"]) == set(NAMES) and "KL" in report["per_clip"]["clip00"]
    assert report["info"]["cache"]["misses"] > 0
    # A second run reads every feature from the cache and gives the same figures.
    code, _, _ = cli(*args)
    again = json.loads((tmp_path / "out.json").read_text())
    assert again["info"]["cache"]["misses"] == 0 and again["figures"] == figures


def test_a_set_against_itself_scores_zero_fd_and_kl(tmp_path, backbones, cli):
    gen = _clips(tmp_path / "gen", NAMES, seed=1)
    code, out, err = cli("eval", "--generated", str(gen), "--reference", str(gen), "--backbone", f"tagger:{backbones / 'tagger'}",
                         "--bootstrap", "0", "--no-cache", "--json", str(tmp_path / "o.json"))
    assert code == 0, err
    figures = json.loads((tmp_path / "o.json").read_text())["figures"]
    assert abs(figures["FD"]["value"]) < 1e-6 and abs(figures["FAD"]["value"]) < 1e-6
    assert abs(figures["KL"]["value"]) < 1e-5
    assert "CLAP: not computed (no CLAP backbone)" in out


def test_unpaired_folders_stop_with_the_missing_names(tmp_path, backbones, cli):
    gen = _clips(tmp_path / "gen", NAMES[:3], seed=1)
    ref = _clips(tmp_path / "ref", NAMES[1:4], seed=2)
    code, out, err = cli("eval", "--generated", str(gen), "--reference", str(ref), "--backbone", f"tagger:{backbones / 'tagger'}", "--no-cache")
    assert code == 2
    assert "reference files have no generated file (clip03)" in err and "(clip00)" in err
    assert not out


def test_missing_captions_and_bad_backbones_are_input_errors(tmp_path, backbones, cli):
    gen = _clips(tmp_path / "gen", NAMES[:2], seed=1)
    (tmp_path / "captions.csv").write_text("name,caption\nclip00,a tone\n")
    code, _, err = cli("eval", "--generated", str(gen), "--captions", str(tmp_path / "captions.csv"), "--backbone", f"clap:{backbones / 'clap'}", "--no-cache")
    assert code == 2 and "1 files have no caption (clip01)" in err
    code, _, err = cli("eval", "--generated", str(gen), "--backbone", "resnet:foo")
    assert code == 2 and "expected inworld, panns:PATH" in err
    code, _, err = cli("eval", "--generated", str(gen), "--backbone", f"panns:{tmp_path / 'nope.pth'}")
    assert code == 2 and "no such checkpoint file" in err
