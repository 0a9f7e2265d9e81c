"""`foleyflow edit`: output files, figures, and the foundation's error contract (one line, exit 2, no output)."""

import numpy as np
import pytest
import soundfile as sf
from editor_tiny import tiny_editor

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("editor")
    tiny_editor().save_pretrained(folder)
    return folder


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "in.wav"
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal(4410), 44100)  # 0.1 s at 44.1 kHz
    return path


def test_edit_writes_audio_and_both_figures(cli, tmp_path, model_dir, clip):
    out, attention, spectrogram = tmp_path / "out.wav", tmp_path / "attn.png", tmp_path / "spec.png"
    code, stdout, stderr = cli(
        "edit", str(clip), "Add a dog barking", "-o", str(out), "--model", str(model_dir), "--steps", "2", "--cfg", "2",
        "--t-start", "0.1", "--seed", "1", "--solver", "heun", "--attention-map", str(attention), "--spectrogram", str(spectrogram),
    )
    assert code == 0, stderr
    info = sf.info(out)
    assert info.samplerate == 44100 and info.frames == 4410  # the input's rate and length, the edit carried back
    assert attention.read_bytes()[:8] == PNG and spectrogram.read_bytes()[:8] == PNG
    assert "4 NFE" in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.wav", "Add rain"], "no such file"),
        (["{clip}", "   "], "instruction is empty"),
        (["{clip}", "Add rain", "--t-start", "1.5"], "t-start"),
        (["{clip}", "Add rain", "--steps", "0"], "steps"),
        (["{clip}", "Add rain", "--solver", "rk4"], "solver"),
        (["{clip}", "Add rain", "--model", "/nonexistent/editor"], "no such model folder"),
        (["{clip}", "Remove the rain", "--removal", "gains"], "needs an editor with a remover"),
        (["{clip}", "Remove the rain", "--removal", "erase"], "removal"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(cli, tmp_path, model_dir, clip, args, message):
    out = tmp_path / "out.wav"
    args = [a.format(clip=clip) for a in args]
    if "--model" not in args:
        args += ["--model", str(model_dir)]
    code, stdout, stderr = cli("edit", *args, "-o", str(out))
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.glob(".out.wav*")) == []


@pytest.mark.parametrize("samples", [1, 100, 512])
def test_a_clip_shorter_than_half_a_window_is_edited_with_spectral_compositing(model_dir, samples):
    from foleyflow.pipelines.editor import Editor

    editor = Editor.from_pretrained(model_dir)
    source = (0.1 * np.random.default_rng(samples).standard_normal(samples)).astype(np.float32)
    for composite in ("spectral", "every-step+spectral"):
        audio = editor.edit(source, "Add rain", steps=1, mask="none", composite=composite).audio
        assert audio.shape == (samples,) and np.isfinite(audio).all()


@pytest.mark.parametrize("option, name, message", [("-o", "out.aac", "foleyflow writes no '.aac' audio"), ("-o", "out", "no suffix"),
                                                   ("--mask-out", "mask.jpg", "end the name in .png"),
                                                   ("--spectrogram", "spec.svg", "end the name in .png")])
def test_an_output_suffix_with_no_format_fails_before_the_model_loads(cli, tmp_path, clip, option, name, message):
    args = ["-o", str(tmp_path / "out.wav")] if option != "-o" else []
    code, _, stderr = cli("edit", str(clip), "Add rain", *args, option, str(tmp_path / name), "--model", "/nonexistent/editor")
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert [path.name for path in tmp_path.iterdir()] == ["in.wav"]


def test_the_edit_is_written_in_the_format_its_name_says(cli, tmp_path, model_dir, clip):
    out = tmp_path / "out.flac"
    code, _, stderr = cli("edit", str(clip), "Add rain", "-o", str(out), "--model", str(model_dir), "--steps", "1")
    assert code == 0, stderr
    assert sf.info(out).format == "FLAC" and sf.info(out).frames == 4410  # 0.1 s at the input's 44.1 kHz


def test_the_edit_keeps_the_recordings_rate_and_channels_unless_asked_for_16k_mono(cli, tmp_path, model_dir):
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, 0.1 * np.random.default_rng(5).standard_normal((9600, 2)), 48000)  # 0.2 s
    args = ["edit", str(stereo), "Add rain", "--model", str(model_dir), "--steps", "1", "--mask", "none"]
    code, stdout, stderr = cli(*args, "-o", str(tmp_path / "kept.flac"))
    assert code == 0, stderr
    info = sf.info(tmp_path / "kept.flac")
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, 9600) and "48 kHz 2 channels" in stdout
    code, stdout, stderr = cli(*args, "-o", str(tmp_path / "mono.wav"), "--mono-16k")
    assert code == 0, stderr
    info = sf.info(tmp_path / "mono.wav")
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 3200) and "16 kHz mono" in stdout
    # the carried edit's mix, back at 16 kHz, is the editor's own output below the resamplers' transition band
    from foleyflow.audio.io import load_audio

    kept, mono = (np.fft.rfft(load_audio(tmp_path / name)) for name in ("kept.flac", "mono.wav"))
    below = np.fft.rfftfreq(3200, 1 / 16000) < 7000
    assert np.linalg.norm(kept[below] - mono[below]) < 0.02 * np.linalg.norm(mono[below])


def test_an_edit_that_changes_nothing_gives_a_24_bit_stereo_recording_back_sample_for_sample(cli, tmp_path):
    from editor_tiny import mask_head_editor

    folder = tmp_path / "editor"
    mask_head_editor(mask_threshold=1.0).save_pretrained(folder)  # a sigmoid never reaches 1: the mask marks nothing
    recording = tmp_path / "take.wav"
    sf.write(recording, 0.3 * np.random.default_rng(8).standard_normal((4800, 2)), 48000, subtype="PCM_24")
    for name in ("same.wav", "same.flac"):
        code, _, stderr = cli("edit", str(recording), "Add rain", "-o", str(tmp_path / name), "--model", str(folder), "--steps", "1",
                              "--mask", "learned", "--composite", "audio")
        assert code == 0 and "marked no frame" in stderr, stderr
        assert sf.info(tmp_path / name).subtype == "PCM_24"
        np.testing.assert_array_equal(sf.read(tmp_path / name, dtype="int32")[0], sf.read(recording, dtype="int32")[0])


def test_a_codec_that_does_not_take_the_recordings_rate_fails_before_the_model_loads(cli, tmp_path, clip):
    code, _, stderr = cli("edit", str(clip), "Add rain", "-o", str(tmp_path / "out.opus"), "--model", "/nonexistent/editor")
    assert code == 2 and ".opus takes 8, 12, 16, 24, 48 kHz, not 44.1 kHz" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = cli("edit", str(clip), "Add rain", "-o", str(tmp_path / "out.opus"), "--model", "/nonexistent/editor", "--mono-16k")
    assert code == 2 and "no such model folder" in stderr  # at 16 kHz the rate is Opus's: the next check fails
    surround = tmp_path / "surround.wav"
    sf.write(surround, np.zeros((4800, 3)), 48000)
    code, _, stderr = cli("edit", str(surround), "Add rain", "-o", str(tmp_path / "out.mp3"), "--model", "/nonexistent/editor")
    assert code == 2 and ".mp3 holds at most 2 channels, not 3" in stderr and len(stderr.strip().splitlines()) == 1


def test_text_file_as_audio_is_rejected(cli, tmp_path, model_dir):
    bad = tmp_path / "text.wav"
    bad.write_bytes(b"not audio at all" * 10)
    code, _, stderr = cli("edit", str(bad), "Add rain", "-o", str(tmp_path / "o.wav"), "--model", str(model_dir))
    assert code == 2 and "not a readable audio file" in stderr and not (tmp_path / "o.wav").exists()


def test_commands_are_registered(cli):
    for group in ("train", "bench"):
        code, out, _ = cli(group, "--help")
        assert code == 0 and "edit" in out


def test_bench_edit_prints_a_table_and_json(cli, monkeypatch, model_dir):
    import foleyflow.pipelines.edit_bench as edit_bench

    rng = np.random.default_rng(0)
    items = [{"task": task, "source": (0.1 * rng.standard_normal(1024)).astype(np.float32), "instruction": f"{task} it"} for task in ("add", "remove", "replace")]
    for item in items:
        item["target"] = item["source"] * 0.5
    seen = {}
    monkeypatch.setattr(edit_bench, "test_triplets", lambda split, count, seed, root, tasks, replace_onset, perfect_sampler: seen.update(
        split=split, count=count, root=root, tasks=tasks, replace_onset=replace_onset, perfect_sampler=perfect_sampler) or items)
    code, out, err = cli("bench", "edit", "--n", "3", "--model", str(model_dir), "--steps", "1", "--t-starts", "0.1", "--data", "/some/set")
    assert code == 0, err
    assert seen == {"split": "test", "count": 3, "root": "/some/set", "tasks": ["add", "remove", "replace"], "replace_onset": "aligned",
                    "perfect_sampler": False}
    assert "| replace | 1 | flow t_start=0.1 |" in out
    code, out, err = cli("bench", "edit", "--n", "3", "--model", str(model_dir), "--steps", "1", "--t-starts", "0", "--json")
    import json

    assert code == 0 and json.loads(out)["tasks"]["add"]["methods"]["flow t_start=0"]["nfe"] == 1
    assert json.loads(out)["cfg_scale"] == 1.0  # the model's own
    code, out, err = cli("bench", "edit", "--n", "3", "--model", str(model_dir), "--steps", "1", "--t-starts", "0", "--cfg", "2.5")
    assert code == 0, err
    assert out.startswith("steps 1, guidance 2.5,")
    code, _, err = cli("bench", "edit", "--n", "3", "--model", str(model_dir), "--cfg", "-1")
    assert code == 2 and "--cfg" in err


@pytest.mark.parametrize("removal, message", [("erase", "--removal"), ("gains", "needs an editor with a remover")])
def test_bench_edit_rejects_a_bad_removal(cli, monkeypatch, model_dir, removal, message):
    import foleyflow.pipelines.edit_bench as edit_bench

    item = {"task": "remove", "source": np.zeros(1024, np.float32), "target": np.zeros(1024, np.float32), "instruction": "remove it"}
    monkeypatch.setattr(edit_bench, "test_triplets", lambda *args: [item])
    code, _, err = cli("bench", "edit", "--model", str(model_dir), "--n", "1", "--tasks", "remove", "--removal", removal)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bench_edit_rejects_bad_t_starts(cli, model_dir):
    code, _, err = cli("bench", "edit", "--model", str(model_dir), "--t-starts", "0.1,abc")
    assert code == 2 and "--t-starts" in err


def test_bench_edit_rejects_fewer_triplets_than_tasks(cli, model_dir):
    code, _, err = cli("bench", "edit", "--model", str(model_dir), "--n", "1", "--tasks", "add,remove")
    assert code == 2 and "less than one triplet per task" in err and len(err.strip().splitlines()) == 1


def test_bench_edit_rejects_an_unknown_replace_scoring(cli, model_dir):
    code, _, err = cli("bench", "edit", "--model", str(model_dir), "--n", "3", "--replace-onset", "free")
    assert code == 2 and "replace_onset must be one of aligned, true" in err and len(err.strip().splitlines()) == 1


def test_edit_and_bench_edit_offer_exactly_the_editors_removals():
    # Spelled out in the CLI (importing the editor would load torch before --help); they must not drift.
    from foleyflow.interfaces.cli import cli as group
    from foleyflow.interfaces.commands import load_all
    from foleyflow.pipelines.editor import REMOVALS

    load_all()
    for command in (group.commands["edit"], group.commands["bench"].commands["edit"]):
        option = next(p for p in command.params if p.name == "removal")
        assert tuple(option.type.choices) == tuple(REMOVALS), command.name
