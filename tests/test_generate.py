"""The Generator pipeline and `foleyflow generate`, on a tiny exported generator (random weights)."""

import numpy as np
import pytest
import soundfile as sf
import torch

from foleyflow.errors import InputError
from foleyflow.generator import Generator, WindowedDenoiser, check_prompt
from training_helpers import make_tiny_generator

WINDOW_SECONDS = 0.32  # the tiny generator's training window: 8 latent frames, 5120 samples


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_generator(tmp_path_factory.mktemp("generator"))


@pytest.fixture(scope="module")
def generator(model_dir):
    return Generator.from_pretrained(model_dir, device="cpu")


def test_generate_returns_one_clip_per_prompt_and_sample(generator):
    audio = generator.generate(["rain falls", "a cow moos"], steps=2, num_samples=2)
    assert audio.shape == (4, 5120) and audio.dtype == np.float32 and np.isfinite(audio).all()
    assert generator.generate("rain", steps=2, duration=0.2).shape == (1, 3200)


def test_same_seed_same_audio_and_samples_do_not_depend_on_the_batch(generator):
    first = generator.generate("rain falls", steps=3, seed=4, num_samples=2)
    np.testing.assert_array_equal(first, generator.generate("rain falls", steps=3, seed=4, num_samples=2))
    assert not np.allclose(first[0], first[1], atol=1e-3)
    # Latents (before the vocoder, whose Griffin-Lim fallback draws phases per batch):
    # sample k of a batch is the sample of seed + k generated alone.
    batch = generator.generate_latents(["rain falls"], 3, 3.0, 4, "ddim", 2, WINDOW_SECONDS)
    alone = generator.generate_latents(["rain falls"], 3, 3.0, 5, "ddim", 1, WINDOW_SECONDS)
    torch.testing.assert_close(batch[1], alone[0], rtol=1e-4, atol=1e-4)


def test_every_sampler_and_long_durations_work(generator):
    for sampler in ("ddim", "dpm", "ddpm"):
        audio = generator.generate("rain falls", steps=3, sampler=sampler, duration=3 * WINDOW_SECONDS)
        assert audio.shape == (1, 3 * 5120) and np.isfinite(audio).all()


@pytest.mark.parametrize("sampler", ["ddim", "dpm", "ddpm"])
def test_on_step_reports_every_sampling_step_even_for_a_long_windowed_clip(generator, sampler):
    reports = []
    audio = generator.generate("rain", steps=3, sampler=sampler, duration=3 * WINDOW_SECONDS, on_step=lambda done, of: reports.append((done, of)))
    assert reports == [(1, 3), (2, 3), (3, 3)] and np.isfinite(audio).all()


def test_sampling_times_sit_on_the_training_grid():
    from foleyflow.diffusion import DDPMSchedule
    from foleyflow.diffusion.schedule import diffusion_times
    from foleyflow.generator import sampling_times

    schedule = DDPMSchedule()
    torch.testing.assert_close(sampling_times(schedule, 25), diffusion_times(25))
    times = sampling_times(schedule, 3).double()
    indices = times[:-1] * 1000 - 1
    assert times[0] == 1 and times[-1] == 0 and torch.allclose(indices, indices.round(), atol=1e-3)
    assert indices.round().tolist() == [999, 666, 332]


def test_windowed_denoiser_cross_fades_to_the_direct_answer_for_a_local_denoiser():
    halve = lambda z, s: 0.5 * z  # noqa: E731  (a pointwise, hence window-independent, denoiser)
    windowed = WindowedDenoiser(halve, window=8, overlap=2)
    z = torch.randn(2, 8, 30, 16)
    torch.testing.assert_close(windowed(z, torch.ones(2)), 0.5 * z)
    assert windowed.starts(30) == [0, 6, 12, 18, 22] and windowed.starts(8) == [0]
    with pytest.raises(InputError):
        WindowedDenoiser(halve, window=8, overlap=8)


def test_guidance_scale_changes_the_result(generator):
    plain = generator.generate("a dog barks", steps=2, cfg=1.0)
    guided = generator.generate("a dog barks", steps=2, cfg=5.0)
    assert not np.allclose(plain, guided)


def test_bad_requests_and_folders_are_input_errors(generator, tmp_path):
    with pytest.raises(InputError, match="steps"):
        generator.generate("rain", steps=0)
    with pytest.raises(InputError, match="duration"):
        generator.generate("rain", duration=0)
    with pytest.raises(InputError, match="sampler"):
        generator.generate("rain", steps=2, sampler="euler")
    (tmp_path / "config.json").write_text('{"_class_name": "AutoencoderKL"}')
    with pytest.raises(InputError, match="not a text-to-audio generator"):
        Generator.from_pretrained(tmp_path)


def test_cli_generate_writes_the_same_wav_for_the_same_seed(model_dir, tmp_path, cli):
    args = ["generate", "rain falls", "--model", str(model_dir), "--steps", "2", "--seed", "0", "--duration", "0.5"]
    code, out, err = cli(*args, "-o", str(tmp_path / "a.wav"), "--spectrogram", str(tmp_path / "a.png"))
    assert code == 0, err
    audio, rate = sf.read(tmp_path / "a.wav")
    assert rate == 16000 and len(audio) == 8000 and (tmp_path / "a.png").stat().st_size > 0
    assert cli(*args, "-o", str(tmp_path / "b.wav"))[0] == 0
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    code, out, _ = cli(*args, "-o", str(tmp_path / "many.wav"), "--num-samples", "2")
    assert code == 0 and (tmp_path / "many_0.wav").is_file() and (tmp_path / "many_1.wav").is_file()
    code, _, err = cli("generate", "rain", "-o", str(tmp_path / "x.wav"), "--model", str(tmp_path / "nowhere"))
    assert code == 2 and "no such model folder" in err
    code, out, err = cli(*args, "-o", str(tmp_path / "many.ogg"), "--num-samples", "2")  # the suffix names the format, for each sample
    assert code == 0 and [sf.info(tmp_path / f"many_{index}.ogg").format for index in (0, 1)] == ["OGG", "OGG"]
    code, _, err = cli("generate", "rain", "-o", str(tmp_path / "x.aac"), "--model", str(tmp_path / "nowhere"))
    assert code == 2 and "foleyflow writes no '.aac' audio" in err  # checked while parsing, before the model
    code, _, err = cli("generate", " ", "-o", str(tmp_path / "x.wav"), "--model", str(tmp_path / "nowhere"))
    assert code == 2 and "the prompt is empty" in err  # before the model, as the web page and a prompts CSV refuse it
    assert check_prompt("  rain \n falls ") == "rain falls"


def test_the_same_command_twice_writes_byte_identical_files(tmp_path_factory, tmp_path, cli):
    """The issue's promise, `generate "rain falls" -o a.wav --steps 25 --seed 0` twice, on a
    tiny random generator with a HiFi-GAN vocoder; the global RNGs are disturbed in between, so
    the result cannot lean on state that a fresh process would not share."""
    model = make_tiny_generator(tmp_path_factory.mktemp("vocoded"), vocoder=True)
    files = []
    for name, seed, disturb in (("a", 0, 1), ("b", 0, 2), ("c", 1, 1)):
        torch.manual_seed(disturb)
        np.random.seed(disturb)
        # 0.64 s: two of the tiny model's windows, so the cross-faded windows are covered too.
        args = ["--steps", "25", "--seed", str(seed), "--duration", "0.64", "--model", str(model)]
        code, _, err = cli("generate", "rain falls", "-o", str(tmp_path / f"{name}.wav"), *args)
        assert code == 0, err
        files.append((tmp_path / f"{name}.wav").read_bytes())
    assert files[0] == files[1] and files[0] != files[2]


def test_ddpm_draws_its_step_noise_from_the_seed(generator):
    """DDPM adds fresh noise at every step; it must come from the seeded generator too."""
    runs = []
    for disturb in (1, 2):
        torch.manual_seed(disturb)
        runs.append(generator.generate_latents(["rain falls"], 25, 3.0, 0, "ddpm", 1, WINDOW_SECONDS))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], generator.generate_latents(["rain falls"], 25, 3.0, 1, "ddpm", 1, WINDOW_SECONDS))
