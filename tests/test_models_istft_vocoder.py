"""The iSTFT vocoder (Vocos' design): synthesis settings, shapes, folders, the codec (its recipe: test_models_codec_recipes)."""

from __future__ import annotations

import pytest
import torch

from foleyflow.audio.mel import log_mel
from foleyflow.errors import InputError
from foleyflow.models.codec import Codec
from foleyflow.models.istft_vocoder import IstftVocoder, IstftVocoderConfig
from foleyflow.models.vae import build_vae
from foleyflow.models.vocoder import build_vocoder, load_vocoder, save_vocoder, vocode, vocoder_family

TINY = {"dim": 16, "intermediate_dim": 32, "num_layers": 2}


def test_the_synthesis_inverts_the_stft_it_predicts(monkeypatch):
    """Given the true centred STFT of a clip, the vocoder's synthesis returns the clip: the
    frame count (mel frames + 1), hop, window and length trimming agree with the analysis."""
    vocoder = IstftVocoder(IstftVocoderConfig(**TINY))
    audio = torch.randn(2, 30 * 160)
    config = vocoder.config
    spectrum = torch.stft(audio, config.n_fft, config.hop_length, config.n_fft, torch.hann_window(config.n_fft), center=True, return_complex=True)
    assert spectrum.shape[-1] == 30 + 1
    monkeypatch.setattr(vocoder, "spectrum", lambda mel: spectrum)
    torch.testing.assert_close(vocoder(torch.zeros(2, 30, 64)), audio, atol=1e-5, rtol=0)


def test_shapes_and_the_mel_layouts():
    vocoder = build_vocoder("istft-cpu", **TINY).eval()
    with torch.no_grad():
        assert vocode(vocoder, torch.randn(2, 10, 64)).shape == (2, 1600)
        assert vocode(vocoder, torch.randn(2, 1, 10, 64)).shape == (2, 1600)
        spectrum = vocoder.spectrum(torch.full((1, 10, 64), 50.0))
    assert spectrum.shape == (1, 321, 11) and spectrum.is_complex()
    assert torch.isfinite(spectrum.abs()).all()  # the magnitude clip keeps a diverged head finite
    with pytest.raises(InputError, match="mel as"):
        vocode(vocoder, torch.randn(2, 10, 80))
    assert build_vocoder("istft-vocos").config.dim == 512
    with pytest.raises(InputError, match="unknown vocoder preset"):
        build_vocoder("istft-huge")
    with pytest.raises(InputError, match="does not take"):
        build_vocoder("istft-cpu", upsample_rates=[5, 4])


def test_folder_round_trip_names_the_family(tmp_path):
    torch.manual_seed(0)
    vocoder = build_vocoder("istft-cpu", **TINY).eval()
    save_vocoder(vocoder, tmp_path / "vocoder")
    loaded = load_vocoder(tmp_path / "vocoder")
    assert isinstance(loaded, IstftVocoder) and loaded.config == vocoder.config
    assert vocoder_family(loaded) == "iSTFT vocoder" and vocoder_family(build_vocoder("cpu")) == "HiFi-GAN" and vocoder_family(None) == "Griffin-Lim"
    mel = torch.randn(1, 12, 64)
    with torch.no_grad():
        torch.testing.assert_close(vocode(loaded, mel), vocode(vocoder, mel))


def test_a_codec_folder_with_an_istft_vocoder_uses_it(tmp_path):
    torch.manual_seed(0)
    codec = Codec(build_vae("cpu").eval(), build_vocoder("istft-cpu", **TINY).eval())
    codec.save_pretrained(tmp_path / "codec")
    loaded = Codec.from_pretrained(tmp_path / "codec")
    assert isinstance(loaded.vocoder, IstftVocoder)
    audio = torch.randn(1, 5000) * 0.1
    torch.testing.assert_close(loaded.roundtrip(audio), codec.roundtrip(audio))



def test_the_phase_advance_is_a_steady_tones_stft_phase():
    """A tone at bin 7's centre frequency: its STFT phase minus the advance is the same in every frame."""
    from foleyflow.models.istft_vocoder import frame_phase_advance

    n_fft, hop, bin_index = 640, 160, 7
    samples = torch.arange(60 * hop, dtype=torch.float64)
    tone = torch.cos(2 * torch.pi * bin_index / n_fft * samples + 0.3)
    spectrum = torch.stft(tone, n_fft, hop, n_fft, torch.hann_window(n_fft, dtype=torch.float64), center=True, return_complex=True)
    advance = frame_phase_advance(spectrum.shape[0], spectrum.shape[1], n_fft, hop)
    relative = torch.angle(spectrum[bin_index, 3:-3] * torch.exp(-1j * advance[bin_index, 3:-3]))  # away from the padded edges
    torch.testing.assert_close(relative, torch.full_like(relative, float(relative[0])), atol=1e-6, rtol=0)
    assert torch.angle(spectrum[bin_index, 3:-3]).std() > 1  # the frame-relative phase itself moves
    assert float(frame_phase_advance(3, 2, n_fft, hop)[2, 1]) == pytest.approx(torch.pi)  # 2 pi * 2 * 160 / 640


def test_a_constant_head_keeps_every_bins_level_only_with_the_advance():
    """Head weights zero, bias = one bin at log-magnitude 0 and the same phase in every frame. With
    the advance, bins 16-19 all give a tone of the same level; frame-relative, the overlapping
    frames interfere: bin 18 (a half turn per frame) cancels, 17 and 19 lose half."""
    def level(bin_index: int, advance: bool) -> float:
        vocoder = build_vocoder("istft-cpu", **TINY, phase_advance=advance).eval()
        with torch.no_grad():
            vocoder.head.weight.zero_()
            vocoder.head.bias.fill_(-20.0)
            vocoder.head.bias[bin_index] = 0.0
            audio = vocoder(torch.zeros(1, 40, 64))
        return float(audio[0, 800:-800].pow(2).mean().sqrt())

    with_advance = [level(b, True) for b in (16, 17, 18, 19)]
    assert max(with_advance) == pytest.approx(min(with_advance), rel=1e-4) and min(with_advance) > 1e-3
    without = [level(b, False) / with_advance[0] for b in (16, 17, 18, 19)]
    assert without == pytest.approx([1.0, 0.5, 0.0, 0.5], abs=1e-3)


def test_the_griffin_lim_phase_preset_predicts_a_magnitude_and_synthesises_through_griffin_lim(monkeypatch):
    """Given the true magnitude of a clip, forward() is fast Griffin-Lim on it: the head gives
    n_fft / 2 + 1 log-magnitudes per frame, mel frames + 1 of them, and no phase (the
    mel-consistent iterations off; test_the_mel_consistent_iterations_* has them)."""
    import foleyflow.models.istft_vocoder as module
    from foleyflow.audio.griffin_lim import griffin_lim

    vocoder = build_vocoder("istft-gla-cpu", **TINY, mel_consistent_iterations=0).eval()
    config = vocoder.config
    assert (config.n_fft, config.phase, vocoder.head.out_features) == (1024, "griffin-lim", 513)
    with torch.no_grad():
        assert vocoder.log_magnitude(torch.randn(2, 10, 64)).shape == (2, 513, 11)
        assert vocode(vocoder, torch.randn(2, 10, 64)).shape == (2, 1600)
    with pytest.raises(ValueError, match="no phase"):
        vocoder.spectrum(torch.randn(1, 10, 64))
    audio = torch.randn(1, 30 * 160)
    magnitude = torch.stft(audio, 1024, 160, 1024, torch.hann_window(1024), center=True, return_complex=True).abs()
    monkeypatch.setattr(vocoder, "magnitude", lambda mel: magnitude)
    expected = griffin_lim(magnitude, n_fft=1024, hop_length=160, length=4800, iterations=config.griffin_lim_iterations, momentum=0.99)
    torch.testing.assert_close(vocoder(torch.zeros(1, 30, 64)), expected)
    assert module.IstftVocoderConfig().phase == "network"  # the Vocos preset keeps its own phase


def test_the_griffin_lim_phase_vocoder_round_trips_and_rejects_an_unknown_phase(tmp_path):
    torch.manual_seed(0)
    vocoder = build_vocoder("istft-gla-cpu", **TINY, griffin_lim_iterations=4).eval()
    save_vocoder(vocoder, tmp_path / "vocoder")
    loaded = load_vocoder(tmp_path / "vocoder")
    assert loaded.config == vocoder.config and vocoder_family(loaded) == "iSTFT vocoder (Griffin-Lim phase)"
    mel = torch.randn(1, 12, 64)
    with torch.no_grad():
        torch.testing.assert_close(vocode(loaded, mel), vocode(vocoder, mel))
    with pytest.raises(InputError, match="phase must be one of"):
        build_vocoder("istft-gla-cpu", phase="learned")
    with pytest.raises(InputError, match="n_fft 1024, hop 160"):
        build_vocoder("istft-gla-cpu", n_fft=640)


def test_an_untrained_griffin_lim_phase_vocoder_starts_from_griffin_lims_magnitude():
    """The head predicts a correction, zero at first: the magnitude is the mel filters'
    pseudo-inverse (floored at the mel floor), the one plain Griffin-Lim uses."""
    from foleyflow.audio.mel import mel_to_magnitude
    from foleyflow.models.istft_vocoder import pseudo_inverse_log_magnitude

    vocoder = build_vocoder("istft-gla-cpu", **TINY).eval()
    mel = log_mel(torch.randn(2, 20 * 160))
    expected = mel_to_magnitude(torch.cat([mel, mel[:, -1:]], dim=1)).clamp_min(1e-5).log().transpose(1, 2)
    with torch.no_grad():
        torch.testing.assert_close(vocoder.log_magnitude(mel), expected.clamp(max=4.6))
    torch.testing.assert_close(pseudo_inverse_log_magnitude(mel), expected)


def test_the_mel_consistent_iterations_project_the_consistent_magnitude_onto_the_input_mel(monkeypatch):
    """After the fixed-magnitude iterations, each further one keeps the consistent spectrum's own
    magnitude moved onto the input mel by ``mel_consistent_updates`` projection updates."""
    from foleyflow.audio.griffin_lim import griffin_lim
    from foleyflow.audio.mel import MelProjection, repeat_last_frame

    vocoder = build_vocoder("istft-gla-cpu", **TINY, griffin_lim_iterations=3, mel_consistent_iterations=2, mel_consistent_updates=2).eval()
    audio = torch.randn(1, 30 * 160)
    mel = log_mel(audio)[:, :30]
    magnitude = torch.rand(1, 513, 31)
    monkeypatch.setattr(vocoder, "magnitude", lambda mel: magnitude)
    projection = MelProjection(repeat_last_frame(mel))
    expected = griffin_lim(magnitude, n_fft=1024, hop_length=160, length=4800, iterations=3, momentum=0.99, refine_iterations=2,
                           refine=lambda m: projection(m.transpose(1, 2), 2).transpose(1, 2))
    with torch.no_grad():
        got = vocoder(mel)
    torch.testing.assert_close(got, expected)
    plain = griffin_lim(magnitude, n_fft=1024, hop_length=160, length=4800, iterations=5, momentum=0.99)
    assert not torch.allclose(got, plain, atol=1e-3)
    with pytest.raises(InputError, match="mel_consistent"):
        build_vocoder("istft-gla-cpu", mel_consistent_updates=0)
    with pytest.raises(ValueError, match="predicts its phase"):
        build_vocoder("istft-cpu", **TINY).phase_search(magnitude, mel)


def test_the_mel_consistent_iterations_bring_the_audios_mel_to_the_input_mel():
    """Griffin-Lim from the pseudo-inverse magnitude (an untrained magnitude vocoder) leaves the
    resynthesis' mel off the input's; letting the magnitude follow the consistent spectrum while
    its band energies stay the mel's brings it closer: the figure issue 4's log-mel L1 measures."""
    t = torch.arange(16000) / 16000
    generator = torch.Generator().manual_seed(3)
    chirp = torch.sin(2 * torch.pi * (200 * t + 1500 * t**2))
    burst = torch.randn(16000, generator=generator) * torch.exp(-((t - 0.6) / 0.05) ** 2)
    audio = (0.3 * chirp + 0.3 * burst)[None]
    mel = log_mel(audio)[:, :100]
    errors = []
    for iterations in (0, 16):
        vocoder = build_vocoder("istft-gla-cpu", **TINY, mel_consistent_iterations=iterations).eval()
        with torch.no_grad():
            errors.append(float((log_mel(vocoder(mel))[:, :100] - mel).abs().mean()))
    assert errors[1] < 0.7 * errors[0]


def test_a_vocoder_config_from_before_the_mel_consistent_iterations_loads_without_them(tmp_path):
    import json

    vocoder = build_vocoder("istft-gla-cpu", **TINY)
    save_vocoder(vocoder, tmp_path / "vocoder")
    config_path = tmp_path / "vocoder" / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("mel_consistent_iterations"), config.pop("mel_consistent_updates")
    config_path.write_text(json.dumps(config))
    assert load_vocoder(tmp_path / "vocoder").config.mel_consistent_iterations == 0


def test_the_mel_projection_brings_the_magnitudes_mel_to_the_input():
    from foleyflow.audio.mel import magnitude_to_log_mel

    torch.manual_seed(0)
    mel = log_mel(torch.randn(1, 20 * 160))
    vocoder = build_vocoder("istft-gla-cpu", **TINY).eval()
    with torch.no_grad():
        vocoder.head.bias.normal_(0, 1.0)  # a magnitude whose mel is off
        errors = []
        for iterations in (0, 10):
            vocoder.config = vocoder.config.__class__(**{**vocoder.config.to_dict(), "mel_projection_iterations": iterations})
            rebuilt = magnitude_to_log_mel(vocoder.magnitude(mel).transpose(1, 2))[:, :20]
            errors.append(float((rebuilt - mel).abs().mean()))
    assert errors[1] < 0.5 * errors[0]


def test_the_codec_benchmarks_no_network_baseline_is_the_same_pipeline_untrained():
    from foleyflow.models.benchmark import untrained_magnitude_vocoder

    trained = build_vocoder("istft-gla-cpu", **TINY, griffin_lim_iterations=8)
    with torch.no_grad():
        trained.head.bias.fill_(1.0)
    baseline = untrained_magnitude_vocoder(trained)
    assert baseline.config == trained.config and float(baseline.head.weight.abs().sum() + baseline.head.bias.abs().sum()) == 0
    assert untrained_magnitude_vocoder(build_vocoder("cpu")).config.phase == "griffin-lim"


def test_the_shipped_codec_decodes_with_the_magnitude_vocoder():
    """The default codec's vocoder is the shipped magnitude vocoder, and on a harmonic tone it
    keeps the mel closer than the Griffin-Lim fallback."""
    from foleyflow.models.vocoder import griffin_lim

    codec = Codec.from_pretrained("default")
    assert isinstance(codec.vocoder, IstftVocoder) and vocoder_family(codec.vocoder) == "iSTFT vocoder (Griffin-Lim phase)"
    assert codec.vocoder.config.mel_projection_iterations == 30 and codec.vocoder.config.griffin_lim_iterations == 32
    t = torch.arange(16000) / 16000
    tone = sum(0.2 / k * torch.sin(2 * torch.pi * 220 * k * t) for k in range(1, 6)) * torch.exp(-2 * t)
    mel = log_mel(tone[None])
    with torch.no_grad():
        audio = vocode(codec.vocoder, mel)
    assert audio.shape == (1, 16000) and torch.isfinite(audio).all()
    assert (log_mel(audio) - mel).abs().mean() < (log_mel(griffin_lim(mel)) - mel).abs().mean()


def test_the_codec_benchmark_pairs_the_vocoder_with_each_baseline_clip_by_clip():
    from foleyflow.models.benchmark import paired_gaps

    per_clip = {"vocoder_mr_stft": [1.0, 2.0, 3.0, 4.0], "griffin_lim_mr_stft": [1.5, 2.5, 2.5, 4.5],
                "vocoder_mel_l1": [0.1, 0.1, 0.1, 0.1], "griffin_lim_mel_l1": [0.2, 0.2, 0.2, 0.2]}
    gaps = {(gap.baseline, gap.figure): gap for gap in paired_gaps(per_clip, resamples=500)}
    assert set(gaps) == {("Griffin-Lim 32 it.", "MR-STFT distance"), ("Griffin-Lim 32 it.", "log-mel L1")}  # nothing unmeasured
    mr_stft = gaps[("Griffin-Lim 32 it.", "MR-STFT distance")]
    assert mr_stft.difference.value == pytest.approx(-0.25) and mr_stft.fraction_closer == 0.75
    assert mr_stft.difference.low <= -0.25 <= mr_stft.difference.high and mr_stft.difference.high <= 0.5
    mel = gaps[("Griffin-Lim 32 it.", "log-mel L1")]
    assert mel.difference.value == pytest.approx(-0.1) and mel.difference.low == pytest.approx(-0.1) and mel.fraction_closer == 1.0


def test_band_shuffle_keeps_each_bands_values_in_every_frame_and_moves_them():
    from foleyflow.audio.mel import mel_band_of_bins
    from foleyflow.models.benchmark import band_shuffled

    band = mel_band_of_bins()
    covered = band[band >= 0]
    assert band.shape == (513,) and int(band.max()) == 63 and (covered[1:] >= covered[:-1]).all()  # bands in frequency order
    assert band[0] == -1 and band[-1] == -1  # DC and Nyquist: no band weighs them
    magnitude = torch.rand(2, 513, 7, generator=torch.Generator().manual_seed(0))
    shuffled = band_shuffled(magnitude, band, torch.Generator().manual_seed(1))
    for b in range(64):
        bins = torch.nonzero(band == b).flatten()
        before, after = magnitude[:, bins, :], shuffled[:, bins, :]
        assert torch.equal(before.sort(dim=1).values, after.sort(dim=1).values)  # same values, frame by frame
    assert torch.equal(shuffled[:, band < 0, :], magnitude[:, band < 0, :])
    assert (shuffled != magnitude).float().mean() > 0.5  # most bins moved
    again = band_shuffled(magnitude, band, torch.Generator().manual_seed(1))
    assert torch.equal(again, shuffled)  # the generator decides


def test_the_codec_benchmarks_true_magnitude_reference_beats_the_band_shuffled_one_on_a_tone():
    """A magnitude vocoder's ceiling (the true magnitude) keeps a harmonic tone's partials; a
    magnitude that knows only each band's values scatters them inside their bands."""
    from foleyflow.models.benchmark import reference_resyntheses
    from foleyflow.training.recipes.codec import multi_resolution_stft_distance

    t = torch.arange(16000) / 16000
    tone = (sum(0.2 / k * torch.sin(2 * torch.pi * 440 * k * t) for k in range(1, 8)))[None]
    audio = reference_resyntheses(tone, torch.Generator().manual_seed(0))
    assert set(audio) == {"true_magnitude", "band_shuffled"} and all(a.shape == tone.shape for a in audio.values())
    true, shuffled = (float(multi_resolution_stft_distance(audio[k], tone)) for k in ("true_magnitude", "band_shuffled"))
    assert true < 0.5 * shuffled


def test_the_trainable_audio_is_the_inference_waveform_with_a_gradient_to_the_magnitude():
    """trainable_audio's value is forward()'s (the whole search ran on it) while its gradient
    reaches the network; the straight-through part is exact when the search keeps the magnitude
    (no mel-consistent iterations): then d(audio)/d(magnitude) is the istft with the phase fixed."""
    torch.manual_seed(0)
    vocoder = build_vocoder("istft-gla-cpu", **TINY, griffin_lim_iterations=4, mel_consistent_iterations=3, mel_projection_iterations=2)
    torch.nn.init.normal_(vocoder.head.weight, std=0.01)
    mel = torch.randn(2, 12, 64) - 4
    audio = vocoder(mel, output="trainable_audio")
    with torch.no_grad():
        torch.testing.assert_close(audio, vocoder(mel), rtol=1e-4, atol=1e-6)
    audio.square().sum().backward()
    assert float(vocoder.head.weight.grad.abs().sum()) > 0

    fixed = build_vocoder("istft-gla-cpu", **TINY, griffin_lim_iterations=4, mel_consistent_iterations=0).double()
    magnitude = (torch.rand(1, 513, 13, dtype=torch.float64) + 0.1).requires_grad_()
    fixed.magnitude = lambda mel: magnitude
    weights = torch.randn(1, 12 * 160, dtype=torch.float64)
    (fixed.trainable_audio(mel.double()) * weights).sum().backward()
    with torch.no_grad():
        phase = torch.angle(fixed._searched_spectrum(magnitude, mel.double()))
    probe = magnitude.detach().clone().requires_grad_()
    window = torch.hann_window(1024, dtype=torch.float64)
    (torch.istft(torch.polar(probe, phase), 1024, 160, 1024, window, length=12 * 160) * weights).sum().backward()
    torch.testing.assert_close(magnitude.grad, probe.grad)
