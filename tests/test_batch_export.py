"""Held-out prompts and edits exported as files, batch generation and editing into a folder, and
`foleyflow eval` reading what they wrote (the commands behind the eval tables in BENCHMARKS.md)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from editor_tiny import tiny_editor
from training_helpers import CAPTIONS, make_tiny_generator

from foleyflow.data.export import export_clips, held_out_prompts, read_prompts, spread_order
from foleyflow.errors import InputError
from foleyflow.evaluation.editing import load_manifest


@pytest.fixture(autouse=True)
def _home_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("FOLEYFLOW_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
    return make_tiny_generator(tmp_path_factory.mktemp("generator"))


@pytest.fixture(scope="module")
def editor_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("editor")
    tiny_editor().save_pretrained(folder)
    return folder


def test_spread_order_takes_every_group_once_before_any_twice():
    groups = ["cow"] * 5 + ["dog"] * 3 + ["bell"]
    order = spread_order(groups, seed=0)
    assert sorted(order) == list(range(len(groups)))
    assert {groups[i] for i in order[:3]} == {"cow", "dog", "bell"}
    assert {groups[i] for i in order[3:5]} == {"cow", "dog"} and {groups[i] for i in order[5:7]} == {"cow", "dog"}
    assert [groups[i] for i in order[7:]] == ["cow", "cow"]
    assert order == spread_order(groups, seed=0)
    assert any(spread_order(groups, seed) != order for seed in range(1, 5))


def test_held_out_prompts_and_export_clips(generator_dir, tmp_path):
    manifest = generator_dir.parent / "inputs" / "train.jsonl"
    prompts = held_out_prompts(manifest, "test", 3, seed=1)
    assert len({p.caption for p in prompts}) == 3 and all(p.caption in CAPTIONS for p in prompts)
    csv_path = export_clips(prompts, tmp_path / "heldout")
    assert read_prompts(csv_path) == [(p.name, p.caption) for p in prompts]
    for prompt in prompts:
        copied = tmp_path / "heldout" / "reference" / f"{prompt.name}.wav"
        assert copied.read_bytes() == prompt.reference.read_bytes()
    with pytest.raises(InputError, match="fewer than --n 9"):
        held_out_prompts(manifest, "test", 9)


def test_read_prompts_rejects_an_empty_caption_and_a_wrong_header(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text("name,caption\na,rain falls\nb,  \n")
    with pytest.raises(InputError, match="empty caption for b"):
        read_prompts(path)
    path.write_text("file,text\na,rain falls\n")
    with pytest.raises(InputError, match="caption"):
        read_prompts(path)


def test_generate_from_a_prompts_csv_then_eval_reads_its_timing(cli, generator_dir, tmp_path):
    manifest = generator_dir.parent / "inputs" / "train.jsonl"
    export_clips(held_out_prompts(manifest, "test", 4, seed=0), tmp_path / "heldout")
    out = tmp_path / "gen"
    code, stdout, stderr = cli("generate", "--prompts", str(tmp_path / "heldout" / "prompts.csv"), "--out-dir", str(out), "--model", str(generator_dir),
                               "--steps", "2", "--duration", "0.32", "--batch-size", "3", "--seed", "5")
    assert code == 0, stderr
    assert "4 clips of 0.32 s" in stdout and "seeds 5..8" in stdout
    names = sorted(p.stem for p in out.glob("*.wav"))
    assert names == sorted(name for name, _ in read_prompts(tmp_path / "heldout" / "prompts.csv"))
    assert all(sf.info(out / f"{name}.wav").frames == 5120 for name in names)
    with open(out / "timing.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["name"] for row in rows) == names and all(float(row["seconds"]) > 0 for row in rows)
    # the batch equals one-by-one generation with the same seeds (clip k: seed + k)
    first_name, first_caption = read_prompts(tmp_path / "heldout" / "prompts.csv")[0]
    code, _, stderr = cli("generate", first_caption, "-o", str(tmp_path / "one.wav"), "--model", str(generator_dir), "--steps", "2", "--duration", "0.32", "--seed", "5")
    assert code == 0, stderr
    # Batched and single matmuls round differently (BLAS blocking), and Griffin-Lim amplifies
    # that a little: equal to 1e-3, where a different seed differs by tenths.
    np.testing.assert_allclose(sf.read(tmp_path / "one.wav")[0], sf.read(out / f"{first_name}.wav")[0], atol=1e-3)

    report = tmp_path / "report.json"
    code, stdout, stderr = cli("eval", "--generated", str(out), "--reference", str(tmp_path / "heldout" / "reference"),
                               "--captions", str(tmp_path / "heldout" / "prompts.csv"), "--bootstrap", "0", "--json", str(report))
    assert code == 0, stderr
    figures = json.loads(report.read_text())["figures"]
    assert figures["time (s)"]["value"] == pytest.approx(np.mean([float(row["seconds"]) for row in rows]), rel=1e-3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompts", "{csv}"], "--prompts needs --out-dir"),
        (["a cow moos", "--prompts", "{csv}", "--out-dir", "{out}"], "--prompts replaces PROMPT"),
        (["--prompts", "{csv}", "--out-dir", "{out}", "--num-samples", "2"], "single PROMPT only"),
        (["a cow moos"], "give a PROMPT and -o"),
    ],
)
def test_batch_generation_usage_errors(cli, generator_dir, tmp_path, args, message):
    prompts = tmp_path / "p.csv"
    prompts.write_text("name,caption\na,a cow moos\n")
    args = [a.format(csv=prompts, out=tmp_path / "gen") for a in args]
    code, _, stderr = cli("generate", *args, "--model", str(generator_dir))
    assert code == 2 and message in stderr and not (tmp_path / "gen").exists()


def _edit_manifest(folder, rows=3):
    rng = np.random.default_rng(0)
    lines = []
    for index, task in enumerate(["add", "remove", "replace"][:rows]):
        source = (0.1 * rng.standard_normal(1600)).astype(np.float32)  # 0.1 s: shorter than the tagger's minimum (padded)
        for role, audio in (("source", source), ("target", 0.5 * source)):
            (folder / role).mkdir(parents=True, exist_ok=True)
            sf.write(folder / role / f"e{index}.wav", audio, 16000)
        lines.append(json.dumps({"id": f"e{index}", "source": f"source/e{index}.wav", "target": f"target/e{index}.wav",
                                 "instruction": f"{task.capitalize()} the bell", "target_caption": "a bell rings", "task": task}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "manifest.jsonl"


def test_edit_a_manifest_into_a_folder_then_eval_edit_scores_it(cli, editor_dir, tmp_path):
    manifest = _edit_manifest(tmp_path / "edits")
    out = tmp_path / "out"
    code, stdout, stderr = cli("edit", "--manifest", str(manifest), "--out-dir", str(out), "--model", str(editor_dir), "--steps", "2", "--seed", "3")
    assert code == 0, stderr
    assert "3 edits" in stdout and sorted(p.stem for p in out.glob("*.wav")) == ["e0", "e1", "e2"]
    assert all(sf.info(out / f"e{k}.wav").frames == 1600 for k in range(3))
    # the same edit as `foleyflow edit IN INSTRUCTION` with the same seed
    code, _, stderr = cli("edit", str(tmp_path / "edits" / "source" / "e1.wav"), "Remove the bell", "-o", str(tmp_path / "one.wav"),
                          "--model", str(editor_dir), "--steps", "2", "--seed", "3")
    assert code == 0, stderr
    np.testing.assert_array_equal(sf.read(tmp_path / "one.wav")[0], sf.read(out / "e1.wav")[0])
    code, stdout, stderr = cli("eval", "edit", "--manifest", str(manifest), "--outputs", f"rfm-edit={out}", "--bootstrap", "0")
    assert code == 0, stderr
    assert "rfm-edit" in stdout and "log-mel L1" in stdout


def test_a_batch_names_the_edits_whose_mask_marked_nothing(cli, tmp_path):
    """As a single edit does, a batch says which of its WAVs are the source unedited: a learned mask
    at threshold 1 marks no frame (a sigmoid never reaches 1)."""
    from editor_tiny import mask_head_editor

    folder = tmp_path / "editor"
    mask_head_editor(mask_threshold=1.0).save_pretrained(folder)
    manifest, out = _edit_manifest(tmp_path / "edits"), tmp_path / "out"
    code, stdout, stderr = cli("edit", "--manifest", str(manifest), "--out-dir", str(out), "--model", str(folder), "--steps", "2",
                               "--mask", "learned", "--composite", "audio")
    assert code == 0, stderr
    assert "3 edits" in stdout
    assert "on 3 of 3 edits the learned mask marked no frame" in stderr and "(e0, e1, e2)" in stderr
    source = sf.read(tmp_path / "edits" / "source" / "e1.wav", dtype="float32")[0]
    np.testing.assert_allclose(sf.read(out / "e1.wav", dtype="float32")[0], source, atol=1e-4)
    code, _, stderr = cli("edit", "--manifest", str(manifest), "--out-dir", str(tmp_path / "out2"), "--model", str(folder), "--steps", "2",
                          "--mask", "none")
    assert code == 0, stderr
    assert "marked no frame" not in stderr  # no mask: every edit reaches everywhere


def test_a_manifest_to_edit_needs_no_targets(cli, editor_dir, tmp_path):
    manifest = _edit_manifest(tmp_path / "edits")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({key: row[key] for key in ("id", "source", "instruction")}) + "\n" for row in rows))
    out = tmp_path / "out"
    code, stdout, stderr = cli("edit", "--manifest", str(manifest), "--out-dir", str(out), "--model", str(editor_dir), "--steps", "1")
    assert code == 0, stderr
    assert "3 edits" in stdout and sorted(p.stem for p in out.glob("*.wav")) == ["e0", "e1", "e2"]


def test_a_manifest_with_a_missing_source_fails_before_writing(cli, editor_dir, tmp_path):
    manifest = _edit_manifest(tmp_path / "edits")
    (tmp_path / "edits" / "source" / "e2.wav").unlink()
    code, _, stderr = cli("edit", "--manifest", str(manifest), "--out-dir", str(tmp_path / "out"), "--model", str(editor_dir))
    assert code == 2 and "row e2: no such source file" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    code, _, stderr = cli("edit", "--manifest", str(manifest), "--model", str(editor_dir))
    assert code == 2 and "--manifest needs --out-dir" in stderr


def test_export_edits_writes_the_triplets_a_manifest_can_load(tmp_path):
    from foleyflow.data.export import export_edits

    rng = np.random.default_rng(0)
    items = [{"triplet_id": f"t{k}", "task": task, "instruction": f"{task} a dog", "source_caption": "rain", "target_caption": "rain and a dog",
              "source": (0.1 * rng.standard_normal(800)).astype(np.float32), "target": (0.1 * rng.standard_normal(800)).astype(np.float32)}
             for k, task in enumerate(("add", "remove", "replace"))]
    loaded = load_manifest(export_edits(items, tmp_path / "export"))
    assert [(item.id, item.task, item.instruction, item.target_caption) for item in loaded] == [
        (f"t{k}", task, f"{task} a dog", "rain and a dog") for k, task in enumerate(("add", "remove", "replace"))]
    for item, original in zip(loaded, items):
        np.testing.assert_allclose(sf.read(item.source, dtype="float32")[0], original["source"], atol=1 / 32768)
        np.testing.assert_allclose(sf.read(item.target, dtype="float32")[0], original["target"], atol=1 / 32768)


def test_export_clips_command_reads_a_corpus_and_covers_every_caption_first(cli, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "audio").mkdir(parents=True)
    rows = []
    for index, (caption, split) in enumerate([("A cow moos", "test")] * 4 + [("A dog barks", "test")] * 2 + [("A bell rings", "train")]):
        sf.write(corpus / "audio" / f"c{index}.wav", 0.1 * np.ones(800, np.float32), 16000)
        rows.append(json.dumps({"clip_id": f"c{index}", "captions": [caption], "split": split}))
    (corpus / "clips.jsonl").write_text("\n".join(rows) + "\n")
    code, stdout, stderr = cli("data", "export-clips", "--corpus", str(corpus), "--split", "test", "--n", "2", "--out", str(tmp_path / "out"))
    assert code == 0, stderr
    assert "2 test clips (2 distinct captions)" in stdout
    assert sorted(caption for _, caption in read_prompts(tmp_path / "out" / "prompts.csv")) == ["A cow moos", "A dog barks"]
    assert len(list((tmp_path / "out" / "reference").glob("*.wav"))) == 2
    code, _, stderr = cli("data", "export-clips", "--corpus", str(corpus), "--split", "test", "--n", "7", "--out", str(tmp_path / "more"))
    assert code == 2 and "fewer than --n 7" in stderr and not (tmp_path / "more").exists()


def test_export_edits_command_writes_the_benchmark_triplets(cli, tmp_path, monkeypatch):
    import foleyflow.pipelines.edit_bench as edit_bench

    rng = np.random.default_rng(1)
    items = [{"triplet_id": f"t{k}", "task": task, "instruction": f"{task} a dog", "source_caption": "rain", "target_caption": "rain, a dog",
              "source": (0.1 * rng.standard_normal(800)).astype(np.float32), "target": (0.1 * rng.standard_normal(800)).astype(np.float32)}
             for k, task in enumerate(("add", "remove", "replace"))]
    seen = {}
    monkeypatch.setattr(edit_bench, "test_triplets", lambda split, count, seed, root, *tasks: seen.update(split=split, count=count, seed=seed) or items)
    code, stdout, stderr = cli("data", "export-edits", "--n", "3", "--seed", "4", "--out", str(tmp_path / "edits"))
    assert code == 0, stderr
    assert seen == {"split": "test", "count": 3, "seed": 4} and "3 test triplets" in stdout
    assert [item.id for item in load_manifest(tmp_path / "edits" / "manifest.jsonl")] == ["t0", "t1", "t2"]
