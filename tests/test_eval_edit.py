"""`foleyflow eval edit`: outputs vs true targets, Table 1/2 layout and ground-truth metrics."""

import json

import numpy as np
import pytest
import torch

from foleyflow.audio.io import write_audio
from foleyflow.errors import InputError
from foleyflow.evaluation.backbones.inworld import build_tagger, save_tagger
from foleyflow.evaluation.editing import load_manifest

SMALL = (2, 2, 4, 4, 4, 8)
TASKS = ["add", "remove", "replace"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data_set(root, count=6):
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    rows = []
    for i in range(count):
        base = 0.05 * rng.normal(size=t.size)
        event = np.where((t > 0.4) & (t < 0.7), 0.4 * np.sin(2 * np.pi * (300 + 100 * i) * t), 0.0)
        task = TASKS[i % 3]
        source, target = (base, base + event) if task != "remove" else (base + event, base)
        write_audio(root / "data" / f"s{i}.wav", source)
        write_audio(root / "data" / f"t{i}.wav", target)
        write_audio(root / "perfect" / f"e{i}.wav", target)
        write_audio(root / "lazy" / f"e{i}.wav", source)
        rows.append({"id": f"e{i}", "source": f"data/s{i}.wav", "target": f"data/t{i}.wav", "instruction": f"{task.title()} a beep",
                     "target_caption": "a beep over noise", "task": task})
    (root / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (root / "perfect" / "timing.csv").write_text("id,seconds\n" + "".join(f"e{i},2.5\n" for i in range(count)))
    return root / "manifest.jsonl"


def test_eval_edit_tables_and_ground_truth(tmp_path, cli):
    manifest = _data_set(tmp_path)
    save_tagger(tmp_path / "tagger", build_tagger(["beep", "noise"], SMALL), ["beep", "noise"])
    code, out, err = cli("eval", "edit", "--manifest", str(manifest), "--outputs", f"rfm-edit={tmp_path / 'perfect'}",
                         "--outputs", f"audioeditor={tmp_path / 'lazy'}", "--backbone", f"tagger:{tmp_path / 'tagger'}",
                         "--bootstrap", "10", "--no-cache", "--json", str(tmp_path / "edit.json"))
    assert code == 0, err
    assert "input" in out and "caption + token mask" in out and "preservation L1" in out
    report = json.loads((tmp_path / "edit.json").read_text())
    perfect, lazy = report["rfm-edit"], report["audioeditor"]
    assert perfect["ground_truth"]["log-mel L1 ↓"]["value"] == 0.0
    assert perfect["ground_truth"]["LSD ↓"]["value"] == 0.0
    assert lazy["ground_truth"]["log-mel L1 ↓"]["value"] > 0.03  # a narrow-band event in 30% of frames
    assert abs(perfect["figures"]["FD"]["value"]) < 1e-6
    assert perfect["figures"]["time (s)"]["value"] == pytest.approx(2.5)
    assert "time (s)" not in lazy["figures"] and set(perfect["by_task"]) == set(TASKS)
    # The lazy "editor" returns the source: outside the event the target is preserved exactly.
    assert lazy["by_task"]["add"]["preservation L1 ↓"]["value"] < 0.05


def test_eval_edit_names_missing_outputs(tmp_path, cli):
    manifest = _data_set(tmp_path)
    (tmp_path / "perfect" / "e3.wav").unlink()
    save_tagger(tmp_path / "tagger", build_tagger(["beep"], SMALL), ["beep"])
    code, _, err = cli("eval", "edit", "--manifest", str(manifest), "--outputs", str(tmp_path / "perfect"),
                       "--backbone", f"tagger:{tmp_path / 'tagger'}", "--no-cache")
    assert code == 2 and "1 reference files have no generated file (e3)" in err


def test_manifest_validation(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"id": "a", "source": "s.wav", "target": "t.wav"}\n')
    with pytest.raises(InputError, match="row 1 lacks instruction"):
        load_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m.csv").write_text("id,source,target,instruction,caption\na,s.wav,/abs/t.wav,Remove the dog,rain\n")
    (item,) = load_manifest(tmp_path / "m.csv")
    assert item.source == tmp_path / "s.wav" and str(item.target) == "/abs/t.wav"
    assert item.task == "remove" and item.target_caption == "rain"
    (tmp_path / "edit-only.jsonl").write_text('{"id": "a", "source": "s.wav", "instruction": "Add rain"}\n')
    with pytest.raises(InputError, match="row 1 lacks target"):
        load_manifest(tmp_path / "edit-only.jsonl")  # scoring needs the true target
    (item,) = load_manifest(tmp_path / "edit-only.jsonl", need_target=False)  # editing does not
    assert item.target is None and item.source == tmp_path / "s.wav" and item.task == "add"


def test_the_input_column_names_what_each_method_needs():
    from foleyflow.evaluation.editing import input_needed

    assert input_needed("rfm-edit") == "instruction" and input_needed("RFM-Edit-t0.01") == "instruction"
    assert input_needed("audioeditor") == "caption + token mask" and input_needed("ddpm-inversion@50") == "source + target caption"
    assert input_needed("no-edit") == "nothing (the source as it is)" and input_needed("codec-only").startswith("nothing (the source through")
    assert input_needed("my-method") == "not stated" and input_needed("auditory") == "not stated"
