"""`foleyflow codec roundtrip`, `foleyflow bench codec` and the codec training commands."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from foleyflow.interfaces.cli import main
from foleyflow.models.codec import Codec
from foleyflow.models.vae import build_vae
from foleyflow.models.vocoder import build_vocoder


@pytest.fixture(scope="module")
def codec_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("codec")
    Codec(build_vae("cpu"), build_vocoder("cpu", upsample_initial_channel=32)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    t = np.arange(8000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 16000)
    return path


def test_roundtrip_writes_a_wav_of_the_input_length(tmp_path, codec_folder, clip, capsys):
    out = tmp_path / "out.wav"
    assert main(["codec", "roundtrip", str(clip), "-o", str(out), "--model", str(codec_folder)]) == 0
    audio, rate = sf.read(out)
    assert rate == 16000 and audio.shape == (8000,)
    assert "HiFi-GAN" in capsys.readouterr().out


def test_roundtrip_of_a_folder_writes_every_file_as_the_single_file_command_would(tmp_path, codec_folder, clip, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.wav").write_bytes(clip.read_bytes())
    sf.write(folder / "b.flac", 0.5 * sf.read(clip)[0], 16000)
    assert main(["codec", "roundtrip", str(folder), "-o", str(tmp_path / "out"), "--model", str(codec_folder)]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "b.wav"] and "2 files" in capsys.readouterr().out
    assert main(["codec", "roundtrip", str(folder / "a.wav"), "-o", str(tmp_path / "single.wav"), "--model", str(codec_folder)]) == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "single.wav")[0], sf.read(tmp_path / "out" / "a.wav")[0])
    (tmp_path / "empty").mkdir()
    assert main(["codec", "roundtrip", str(tmp_path / "empty"), "-o", str(tmp_path / "out2"), "--model", str(codec_folder)]) == 2
    assert not (tmp_path / "out2").exists()


def test_roundtrip_bad_input_is_exit_2(tmp_path, codec_folder):
    assert main(["codec", "roundtrip", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.wav"), "--model", str(codec_folder)]) == 2
    assert main(["codec", "roundtrip", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.wav"), "--model", str(tmp_path / "nothing")]) == 2
    assert not (tmp_path / "o.wav").exists()


def test_bench_codec_writes_rows(tmp_path, codec_folder, clip, capsys):
    out = tmp_path / "rows.md"
    assert main(["bench", "codec", "--model", str(codec_folder), "--audio-folder", str(clip.parent), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| VAE round trip | log-mel L1 |" in text and "Griffin-Lim 32 it." in text
    assert "(no network: pseudo-inverse magnitude, mel projection, the vocoder's phase search) |" in text and "vocoder: HiFi-GAN" in text
    assert text == capsys.readouterr().out
    assert "| Griffin-Lim 32 it. | MR-STFT distance |" in text and "| no network | log-mel L1 |" in text  # paired tables
    assert "--against vocoder" not in text
    assert "(reference, not a vocoder: the true STFT magnitude, fast Griffin-Lim) |" in text
    assert "(reference: the true magnitude shuffled within each mel band, fast Griffin-Lim) |" in text
    assert "| spectral flatness | clips | Griffin-Lim 32 it. | vocoder | vocoder / Griffin-Lim | reference: true magnitude | reference: band-shuffled | reference: band-flat |" in text
    flat = next(line for line in text.splitlines() if "(reference, no waveform: the best magnitude flat within each mel band" in line)
    griffin_lim = next(line for line in text.splitlines() if line.startswith("| vocoder | MR-STFT distance | ") and "(Griffin-Lim 32 it.)" in line)
    # the best band-flat magnitude, no phase to find, is closer than Griffin-Lim's signal
    assert 0 < float(flat.split("| | ")[1].split()[0]) < float(griffin_lim.split(" | ")[3].split()[0])
    assert "| 0-0.01 | 1 |" in text  # the one clip is a pure tone


def test_bench_codec_compares_a_second_vocoder_clip_by_clip(tmp_path, codec_folder, clip, capsys):
    out = tmp_path / "rows.md"
    args = ["bench", "codec", "--model", str(codec_folder), "--audio-folder", str(clip.parent), "--out", str(out)]
    assert main([*args, "--against", str(codec_folder / "vocoder")]) == 0
    text = out.read_text()
    own = next(line for line in text.splitlines() if line.startswith("| vocoder | MR-STFT distance | "))
    against = next(line for line in text.splitlines() if line.endswith("(the --against vocoder) |"))
    assert own.split("|")[3].strip() == against.split("|")[4].strip().split(" / ")[0]  # the same vocoder scores the same
    assert "| the --against vocoder | MR-STFT distance | 0.000 [0.000, 0.000] | 0% |" in text
    assert main([*args, "--against", str(tmp_path / "missing")]) == 2


def test_bench_codec_compares_a_second_vae_clip_by_clip(tmp_path, codec_folder, clip):
    out = tmp_path / "rows.md"
    args = ["bench", "codec", "--model", str(codec_folder), "--audio-folder", str(clip.parent), "--out", str(out)]
    assert main([*args, "--against-vae", str(codec_folder / "vae")]) == 0
    lines = out.read_text().splitlines()
    own = next(line for line in lines if line.startswith("| VAE round trip | log-mel L1 |"))
    theirs = next(line for line in lines if line.endswith("(the --against-vae VAE) |") and line.startswith("| VAE round trip"))
    assert own.split("|")[3].strip() == theirs.split("|")[4].strip().split(" ")[0]  # the same VAE scores the same
    assert "| the --against-vae VAE | VAE round trip log-mel L1 | 0.000 [0.000, 0.000] | 0% |" in lines
    assert "| the --against-vae VAE | full chain log-mel L1 | 0.000 [0.000, 0.000] | 0% |" in lines
    assert any(line.startswith("| 4x avg-pool + nearest | VAE round trip log-mel L1 |") for line in lines)
    assert main([*args, "--against-vae", str(tmp_path / "missing")]) == 2

def test_train_vae_config_mismatch_is_exit_2(tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"recipe": "vocoder"}')
    assert main(["train", "vae", "--config", str(config)]) == 2


def test_train_vae_runs_and_exports(tmp_path, clip):
    from foleyflow.training.recipes.codec import _stable_fraction

    folder = tmp_path / "audio"
    folder.mkdir()
    names = [f"clip{i}.wav" for i in range(40)]
    assert any(_stable_fraction(n) < 0.1 for n in names) and any(_stable_fraction(n) >= 0.1 for n in names)
    for index, name in enumerate(names[:40]):
        sf.write(folder / name, (0.1 * np.sin(np.arange(4000) * (0.05 + index / 100))).astype(np.float32), 16000)
    config = tmp_path / "c.json"
    config.write_text(
        '{"recipe": "vae", "recipe_options": {"audio_folder": "%s", "segment_frames": 16, "items_per_epoch": 4, "scale_batches": 1,'
        ' "vae_overrides": {"block_out_channels": [8, 8, 8], "norm_num_groups": 4}},'
        ' "max_steps": 2, "batch_size": 2, "val_every": 2, "val_batches": 1, "checkpoint_every": 2, "log_every": 1}' % folder
    )
    assert main(["train", "vae", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    # the codec recipes are the registry's like the others: `train export` re-exports their checkpoints
    assert main(["train", "export", str(tmp_path / "run"), "--step", "2", "--out", str(tmp_path / "again")]) == 0
    from foleyflow.models.vae import load_vae

    first, again = load_vae(tmp_path / "run" / "model").state_dict(), load_vae(tmp_path / "again").state_dict()
    assert all(torch.equal(first[name], again[name]) for name in first)


def test_roundtrip_of_a_folder_with_an_empty_file_is_one_line_exit_2(tmp_path, codec_folder, clip, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.wav").write_bytes(clip.read_bytes())
    sf.write(folder / "b.wav", np.zeros(0, np.float32), 16000)
    code = main(["codec", "roundtrip", str(folder), "-o", str(tmp_path / "out"), "--model", str(codec_folder)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "out" / "b.wav").exists()


def test_spectral_flatness_is_near_zero_for_a_tone_and_exp_minus_gamma_for_white_noise():
    from foleyflow.models.benchmark import spectral_flatness

    t = torch.arange(32000) / 16000
    assert spectral_flatness((0.3 * torch.sin(2 * torch.pi * 330 * t))[None]) < 0.01
    # each bin's power of Gaussian noise is exponential: E log P = log E P - gamma
    noise = torch.from_numpy(np.random.default_rng(0).standard_normal(32000).astype(np.float32))[None]
    assert spectral_flatness(0.1 * noise) == pytest.approx(np.exp(-np.euler_gamma), rel=0.03)
    # frames 30 dB below the loudest do not count: a near-silent tail leaves the figure as it was
    padded = torch.cat([0.1 * noise, 1e-5 * noise], dim=1)
    assert spectral_flatness(padded) == pytest.approx(spectral_flatness(0.1 * noise), rel=0.02)


def test_flatness_groups_average_each_groups_clips():
    from foleyflow.models.benchmark import flatness_groups

    groups = flatness_groups({"flatness": [0.005, 0.5, 0.3, 0.02], "griffin_lim_mr_stft": [1.0, 2.0, 4.0, 3.0], "vocoder_mr_stft": [0.5, 1.0, 3.0, 2.0],
                              "true_magnitude_mr_stft": [0.1, 0.2, 0.4, 0.3], "band_shuffled_mr_stft": [1.0, 1.5, 2.5, 1.0],
                              "band_flat_mr_stft": [0.7, 0.9, 0.5, 0.8], "vae_l1": [9.0] * 4})
    assert [(g.low, g.high, g.clips) for g in groups] == [(0.0, 0.01, 1), (0.01, 0.05, 1), (0.2, None, 2)]
    last = groups[2]
    assert (last.griffin_lim_mr_stft, last.vocoder_mr_stft, last.true_magnitude_mr_stft, last.band_shuffled_mr_stft, last.band_flat_mr_stft) == pytest.approx((3.0, 2.0, 0.3, 2.0, 0.7))
