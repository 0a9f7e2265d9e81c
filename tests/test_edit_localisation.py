"""Issue 9 at inference: mask methods, compositing modes, their defaults, and the CLI's --mask/--composite/--mask-out."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from editor_tiny import LATENT_CHANNELS, ReshapeCodec, TinyTextEncoder, mask_head_editor, tiny_editor, tiny_unet_config

from foleyflow.diffusion.flow import RectifiedFlowPath
from foleyflow.diffusion.ode import solve_euler
from foleyflow.errors import InputError
from foleyflow.pipelines.compositing import (
    blend, blend_audio, blend_spectral, blended_flow_solve, bound_spectrum, keep_levels, local_level, raise_to_floor,
    room_tone, spectral_rule, stft_frame_mask,
)
from foleyflow.pipelines.editor import Editor, EditorConfig
from foleyflow.pipelines.masks import (
    MaskOptions,
    dilate,
    finish_mask,
    frames_to_samples,
    min_max,
    object_token_indices,
    soft_edges,
)

PNG = b"\x89PNG\r\n\x1a\n"
FRAMES = 8  # latent frames of the tiny editor's 1024-sample window


def _noise(samples: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


class ScriptedUNet(torch.nn.Module):
    """A stand-in UNet: velocity = -x_t, the instruction moves frames 5..7 only, the mask channel says frames 20..22."""

    def __init__(self, mask_head: bool = True) -> None:
        super().__init__()
        self.mask_head = mask_head
        self.config = {}

    def forward(self, sample, timestep, encoder_hidden_states=None, encoder_attention_mask=None):
        x = sample[:, :LATENT_CHANNELS]
        velocity = -x.clone()
        velocity[:, :, 5:8] += encoder_hidden_states.abs().sum(dim=(1, 2))[:, None, None, None]
        outputs = [velocity]
        if self.mask_head:
            logits = torch.full_like(x[:, :1], -6.0)
            logits[:, :, 20:23] = 6.0
            outputs.append(logits)
        return SimpleNamespace(sample=torch.cat(outputs, dim=1))


def scripted_editor(**config) -> Editor:
    editor_config = EditorConfig(steps=config.pop("steps", 4), window_seconds=0.256, overlap_seconds=0.016, mask_head=True, **config)
    return Editor(ScriptedUNet(), TinyTextEncoder(), ReshapeCodec(), editor_config)


# -- masks ------------------------------------------------------------------------------------
def test_every_method_gives_a_mask_of_the_common_shape_and_range():
    editor, audio = mask_head_editor(), _noise(3000)
    run = editor.sample_clip(audio, "Add a dog barking", methods=("none", "learned", "diffedit", "attention"))
    windows = run.x_source.shape[0]
    assert set(run.masks) == {"none", "learned", "diffedit", "attention"}
    for method, mask in run.masks.items():
        assert mask.shape == (windows, 1, FRAMES, 1), method
        assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0, method
    assert torch.equal(run.masks["none"], torch.ones(windows, 1, FRAMES, 1))


def test_learned_mask_follows_the_mask_channel_and_diffedit_the_instruction():
    run = scripted_editor().sample_clip(_noise(4096), "Add a dog", methods=("learned", "diffedit"))
    ramp = MaskOptions().ramp
    expected = np.zeros(32)
    expected[19:24] = 1.0  # frames 20..22 of the head, dilated by one frame
    expected[[18, 24]], expected[[17, 25]], expected[[16, 26]] = 0.75, 0.5, 0.25  # the ramp outside
    assert ramp == 3
    np.testing.assert_allclose(run.masks["learned"][0, 0, :, 0].numpy(), expected)
    diffedit = run.masks["diffedit"][0, 0, :, 0]
    assert diffedit[5:8].min() == 1.0 and diffedit[13:].max() == 0.0  # smoothed, dilated and ramped: where the instruction acts, and nowhere else


def test_learned_mask_needs_a_mask_head():
    with pytest.raises(InputError, match="mask-head"):
        tiny_editor().edit(_noise(500), "Add rain", mask="learned")
    with pytest.raises(InputError, match="mask-head"):
        EditorConfig(mask="learned")


def test_defaults_follow_the_mask_head():
    assert (EditorConfig().mask, EditorConfig().composite) == ("none", "none")
    assert (EditorConfig(mask_head=True).mask, EditorConfig(mask_head=True).composite) == ("learned", "end")
    assert EditorConfig(mask="diffedit").composite == "end"
    with pytest.raises(InputError, match="composite"):
        EditorConfig(objective="ddpm", mask="diffedit", composite="every-step")
    with pytest.raises(InputError, match="mask must be one of"):
        tiny_editor().edit(_noise(500), "Add rain", mask="oracle")


def test_mask_shaping_soft_edges_dilation_and_normalising():
    binary = torch.tensor([[0.0, 0, 0, 0, 1, 0, 0, 0, 0]])
    assert dilate(binary, 1).tolist() == [[0, 0, 0, 1, 1, 1, 0, 0, 0]]
    assert soft_edges(binary, 3).tolist()[0] == pytest.approx([0, 0.25, 0.5, 0.75, 1, 0.75, 0.5, 0.25, 0])
    assert min_max(torch.ones(1, 5)).sum() == 0  # no evidence -> nothing selected
    score = torch.tensor([[0.0, 0.1, 0.9, 1.0, 0.2, 0.0]])
    mask = finish_mask(score, 0.5, MaskOptions(smooth=1, dilate=0, ramp=0), normalise=True)
    assert mask.shape == (1, 1, 6, 1) and mask.flatten().tolist() == [0, 0, 1, 1, 0, 0]
    with pytest.raises(InputError, match="threshold"):
        MaskOptions(threshold=1.5)


def test_object_tokens_skip_template_words_and_special_tokens():
    assert object_token_indices(["add", "a", "dog", "barking"]) == [2, 3]
    assert object_token_indices(["[CLS]", "replace", "the", "birds", "with", "rain", "[SEP]"]) == [3, 5]
    assert object_token_indices(["▁Remove", "▁the", "▁bell", "</s>"]) == [2]
    assert object_token_indices("get rid of the sound of a dog barking".split()) == [7, 8]
    assert object_token_indices("mix in rain to the recording".split()) == [2]
    assert object_token_indices(["add", "the"]) == [0, 1]  # nothing but template words: keep them all


def test_frames_to_samples_interpolates_between_frame_centres():
    per_sample = frames_to_samples(np.array([0.0, 1.0]), 4, 8)
    assert per_sample.shape == (8,) and per_sample[0] == 0.0 and per_sample[-1] == 1.0
    assert np.all(np.diff(per_sample) >= 0)


# -- compositing ------------------------------------------------------------------------------
def test_end_compositing_with_zero_and_one_masks_is_exact():
    edited, source = torch.randn(2, 8, 6, 4), torch.randn(2, 8, 6, 4)
    zeros, ones = torch.zeros(2, 1, 6, 1), torch.ones(2, 1, 6, 1)
    assert torch.equal(blend(edited, source, zeros), source) and torch.equal(blend(edited, source, ones), edited)


def test_editor_end_compositing_zero_mask_gives_the_source_and_one_mask_the_plain_edit():
    editor, audio = tiny_editor(), _noise(3000)
    run = editor.sample_clip(audio, "Add a dog", methods=("none",))
    plain = editor.finish(run, run.masks["none"], "none")
    assert np.array_equal(editor.finish(run, run.masks["none"], "end"), plain)
    zero = torch.zeros_like(run.masks["none"])
    np.testing.assert_allclose(editor.finish(run, zero, "end"), audio, atol=1e-6)  # ReshapeCodec is exact
    assert np.array_equal(editor.finish(run, zero, "audio"), audio)  # the source itself, bit for bit
    assert np.array_equal(editor.finish(run, zero, "spectral"), audio)
    assert np.array_equal(editor.edit(audio, "Add a dog", mask="none", composite="end").audio, tiny_editor().edit(audio, "Add a dog").audio)


def test_every_step_compositing_keeps_the_unmasked_region_on_the_source_path():
    """Analytic field v = target - x: inside the mask plain Euler, outside exactly the source path at every step."""
    path, times = RectifiedFlowPath(1e-4), torch.linspace(0.1, 1.0, 5)
    source, noise, target = torch.randn(1, 2, 6, 3), torch.randn(1, 2, 6, 3), torch.randn(1, 2, 6, 3)
    mask = torch.zeros(1, 1, 6, 1)
    mask[:, :, 2:4] = 1.0
    seen = []

    def field(x, t, **_):
        seen.append((x.clone(), t[0].clone()))
        return target - x

    x_start = path.edit_start(source, noise, float(times[0]))
    out = blended_flow_solve(solve_euler, field, x_start, times, {}, path, source, noise, lambda: mask)
    outside = mask.expand_as(source) == 0
    for x, t in seen:  # every input the network saw: on the source path outside the mask
        torch.testing.assert_close(x[outside], path.x_t(source, noise, t)[outside])
    torch.testing.assert_close(out[outside], path.x_t(source, noise, 1.0)[outside])
    plain = solve_euler(lambda x, t: target - x, x_start, times)
    torch.testing.assert_close(out[~outside], plain[~outside])  # the field is pointwise: the inside is untouched


def test_every_step_in_the_editor_ends_on_the_source_outside_the_mask():
    editor, audio = tiny_editor(), _noise(1024)
    run0 = editor.sample_clip(audio, "Add a dog")
    keep = torch.zeros(1, 1, FRAMES, 1)
    keep[:, :, 3:5] = 1.0
    run = editor.sample_clip(audio, "Add a dog", keep=keep)
    outside = (keep.expand_as(run.x_source) == 0)
    noise = torch.randn(run.x_source.shape, generator=torch.Generator().manual_seed(0))
    expected = RectifiedFlowPath(editor.config.sigma_min).x_t(run.x_source, noise, 1.0)
    torch.testing.assert_close(run.x_edited[outside], expected[outside])
    assert not torch.allclose(run.x_edited[~outside], run0.x_edited[~outside])  # the context changed the inside


def test_audio_compositing_keeps_the_source_outside():
    edited, source = np.ones(6, np.float32), np.zeros(6, np.float32)
    out = blend_audio(edited, source, np.array([0, 0, 0.5, 1, 1, 0]))
    assert out.tolist() == [0, 0, 0.5, 1, 1, 0] and out.dtype == np.float32


def _tone(freq: float, samples: int = 4000, level: float = 1.0) -> np.ndarray:
    return (level * np.sin(2 * np.pi * freq * np.arange(samples) / 16000)).astype(np.float64)


def _band_level(audio: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio[1000:3000] * np.hanning(2000)))
    return float(spectrum[int(round(freq * 2000 / 16000))])


def test_bound_spectrum_louder_keeps_both_sounds_and_quieter_neither_excess():
    """Source: a 1 kHz tone; edit: a 3 kHz tone. "louder" (add) keeps each where it is the louder,
    so both tones; "quieter" (remove) keeps, bin by bin, the quieter: neither tone survives."""
    source, edit = _tone(1000), _tone(3000)
    louder, quieter = bound_spectrum(edit, source, "louder"), bound_spectrum(edit, source, "quieter")
    for freq in (1000, 3000):
        assert _band_level(louder, freq) == pytest.approx(_band_level(source if freq == 1000 else edit, freq), rel=1e-3)
        assert _band_level(quieter, freq) < 1e-2 * _band_level(louder, freq)


def test_bound_spectrum_closed_forms():
    """Equal inputs come back unchanged (an exact STFT round trip); a scaled copy keeps the louder or quieter copy."""
    source = np.random.default_rng(0).standard_normal(3000)
    np.testing.assert_allclose(bound_spectrum(source, source, "louder"), source, atol=1e-9)
    np.testing.assert_allclose(bound_spectrum(0.5 * source, source, "louder"), source, atol=1e-9)
    np.testing.assert_allclose(bound_spectrum(0.5 * source, source, "quieter"), 0.5 * source, atol=1e-9)
    with pytest.raises(ValueError, match="louder"):
        bound_spectrum(source, source, "middle")


def test_spectral_compositing_bounds_add_and_remove_and_keeps_the_source_outside():
    source, edit = _tone(1000), 0.2 * _tone(1000) + _tone(3000)
    mask = np.zeros(4000)
    mask[500:3500] = 1.0
    assert spectral_rule("add") == "louder" and spectral_rule("remove") == "quieter" and spectral_rule("replace") is None and spectral_rule(None) is None
    added = blend_spectral(edit, source, mask, "louder")
    removed = blend_spectral(edit, source, mask, "quieter")
    plain = blend_spectral(edit, source, mask, None)
    np.testing.assert_array_equal(plain, blend_audio(edit, source, mask))
    for out in (added, removed, plain):
        assert out.dtype == np.float32 and np.array_equal(out[mask == 0], source[mask == 0].astype(np.float32))
    # add: the source's tone stays at its level although the edit turned it down; the new tone comes in.
    assert _band_level(added, 1000) == pytest.approx(_band_level(source, 1000), rel=1e-2) and _band_level(added, 3000) > 0.9 * _band_level(edit, 3000)
    # remove: the edit's quieter 1 kHz passes, its new 3 kHz tone (louder than the source there) does not.
    assert _band_level(removed, 1000) == pytest.approx(_band_level(edit, 1000), rel=1e-2) and _band_level(removed, 3000) < 1e-2 * _band_level(edit, 3000)


def test_room_tone_is_the_quantile_of_the_source_outside_the_edit():
    magnitude = torch.arange(40, dtype=torch.float64).reshape(2, 20)
    outside = np.zeros(20, bool)
    outside[:8] = True
    np.testing.assert_allclose(room_tone(magnitude, outside, 0.5), torch.quantile(magnitude[:, :8], 0.5, dim=1, keepdim=True))
    assert room_tone(magnitude, outside, 0.0).flatten().tolist() == [0.0, 20.0]
    outside[3:] = False  # three frames left alone: too few to say what the room sounds like
    assert room_tone(magnitude, outside, 0.5) is None
    assert stft_frame_mask(np.r_[np.zeros(300), np.ones(300)], 4).tolist() == [0.0, 0.0, 1.0, 1.0]  # frames at samples 0, 256, 512, 768 (clipped)


def test_the_room_tone_near_the_edit_reads_only_the_frames_around_it():
    """Frames 0-9 silent, 10-19 a bed (10), 20-24 edited, 25-29 a louder bed (30). Over the whole clip
    the silence is the quantile; within 3 frames, only the beds on each side of the edit count."""
    from foleyflow.pipelines.masks import dilate

    magnitude = torch.cat([torch.zeros(10), torch.full((10,), 10.0), torch.full((5,), 99.0), torch.full((5,), 30.0)])[None].double()
    outside = np.ones(30, bool)
    outside[20:25] = False
    assert float(room_tone(magnitude, outside, 0.25)) == 0.0
    near = room_tone(magnitude, outside, 0.25, near_frames=3)  # frames 17-19 and 25-27
    np.testing.assert_allclose(near, torch.quantile(torch.tensor([10.0] * 3 + [30.0] * 3, dtype=torch.float64), 0.25).reshape(1, 1))
    assert dilate(torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]), 2)[0].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    # too few frames near the edit (it reaches both ends): every frame left alone counts, as without
    edge = np.zeros(30, bool)
    edge[[0, 1, 2, 3, 29]] = True
    assert torch.equal(room_tone(magnitude, edge, 0.5, near_frames=1), room_tone(magnitude, edge, 0.5))


def test_a_remove_in_a_recording_silent_elsewhere_is_filled_with_the_bed_around_it():
    """The recording is digitally silent for its first half, then a bed with a tone; the edit removed
    the tone and the bed under it. The whole clip's room tone is silence (no fill); the room tone
    read near the edit is the bed's, which fills the hole and brings the output nearer the bed."""
    from foleyflow.pipelines.edit_bench import log_mel_l1

    rng = np.random.default_rng(1)
    bed = np.zeros(32000)
    bed[16000:] = 0.05 * rng.standard_normal(16000)
    mask = np.zeros(32000)
    mask[22000:26000] = 1.0
    source = bed + mask * _tone(1000, samples=32000)
    edit = source * (1 - mask)
    whole = blend_spectral(edit, source, mask, "quieter", room_tone_quantile=0.25)
    near = blend_spectral(edit, source, mask, "quieter", room_tone_quantile=0.25, room_tone_seconds=0.25)
    inside = slice(23000, 25000)
    assert np.std(whole[inside]) < 0.1 * np.std(bed[inside]) < np.std(near[inside])
    assert log_mel_l1(near, bed) < 0.7 * log_mel_l1(whole, bed)
    assert np.array_equal(near[mask == 0], source[mask == 0].astype(np.float32))


def test_raise_to_floor_lifts_only_the_bins_below_it_and_keeps_their_phase():
    kept = torch.tensor([[2.0 + 0j, 0.3j, 0.0 + 0j, 0.1 + 0j]])
    source = torch.tensor([[1.0 + 0j, 1.0 + 0j, -4.0 + 0j, 0.5 + 0j]])
    raised = raise_to_floor(kept, source, torch.tensor([[1.0]]))
    # kept / its phase at the floor / the source's phase / no higher than the source's own bin
    assert torch.allclose(raised, torch.tensor([[2.0 + 0j, 1.0j, -1.0 + 0j, 0.5 + 0j]]))


def test_a_remove_that_falls_silent_is_filled_with_room_tone():
    """Source: a noise bed with a loud tone in the middle; the edit removed the tone and, wrongly, the
    bed under it (silence). The quieter rule keeps the hole; the room tone fills it at the bed's level,
    so the output is nearer the bed-only target, and nothing changes outside the mask."""
    from foleyflow.pipelines.edit_bench import log_mel_l1

    rng = np.random.default_rng(0)
    bed = 0.05 * rng.standard_normal(16000)
    source = bed + _tone(1000, samples=16000)
    source[:5000] = bed[:5000]
    source[11000:] = bed[11000:]
    mask = np.zeros(16000)
    mask[5000:11000] = 1.0
    edit = source * (1 - mask)
    holed = blend_spectral(edit, source, mask, "quieter")
    filled = blend_spectral(edit, source, mask, "quieter", room_tone_quantile=0.5)
    inside = slice(6000, 10000)
    assert np.std(holed[inside]) < 0.1 * np.std(bed[inside])
    # Every bin of the hole at the bed's median magnitude: a Rayleigh median over its RMS, about 0.83 of the level.
    assert 0.6 < np.std(filled[inside]) / np.std(bed[inside]) < 1.0
    assert log_mel_l1(filled, bed) < 0.5 * log_mel_l1(holed, bed)
    assert _band_level(filled[5000:], 1000) < 0.05 * _band_level(source[5000:], 1000)  # the tone stays out
    assert np.array_equal(filled[mask == 0], source[mask == 0].astype(np.float32))
    with pytest.raises(ValueError, match="sample mask"):
        bound_spectrum(edit, source, "quieter", room_tone_quantile=0.5)


def test_keep_levels_closed_forms():
    """An edit equal to the source gives the source under every rule; an edit at a constant fraction
    of it is that fraction (quieter) or the source (louder)."""
    stft = torch.randn(64, 40, dtype=torch.complex128)
    for rule in ("louder", "quieter", None):
        assert torch.allclose(keep_levels(stft, stft, rule, (5, 3)), stft)
    assert torch.allclose(keep_levels(0.5 * stft, stft, "quieter", (5, 3)), 0.5 * stft)
    assert torch.allclose(keep_levels(0.5 * stft, stft, "louder", (5, 3)), stft)
    assert torch.allclose(keep_levels(2.0 * stft, stft, None, (5, 3)), 2.0 * stft)
    # The level is an RMS over the window: a lone loud bin is spread over its neighbours.
    single = torch.zeros(9, 9, dtype=torch.complex128)
    single[4, 4] = 3.0
    assert local_level(single, (3, 3))[4, 4] == pytest.approx(1.0) and local_level(single, (1, 1))[4, 4] == pytest.approx(3.0)


def test_level_compositing_removes_the_event_and_keeps_the_recordings_own_bed():
    """Source: a noise bed with a tone; the edit: *another* realisation of the bed, no tone (what a
    model regenerating the scene gives). Bin by bin, "quieter" keeps the lower of two random beds
    everywhere; by level, the source's own bed stays and only the tone goes."""
    from foleyflow.pipelines.edit_bench import log_mel_l1

    rng = np.random.default_rng(1)
    bed, other_bed = (0.05 * rng.standard_normal(16000) for _ in range(2))
    source = bed + 0.5 * _tone(1000, samples=16000)
    mask = np.ones(16000)
    by_bin = blend_spectral(other_bed, source, mask, "quieter")
    by_level = blend_spectral(other_bed, source, mask, "quieter", level=(17, 9))
    assert _band_level(by_level, 1000) < 0.1 * _band_level(source, 1000)
    assert log_mel_l1(by_level, bed) < 0.5 * log_mel_l1(by_bin, bed)
    # add: the edit's new tone comes in, the rest stays the recording's.
    added = blend_spectral(bed + 0.5 * _tone(3000, samples=16000), bed, mask, "louder", level=(17, 9))
    assert _band_level(added, 3000) > 0.9 * _band_level(0.5 * _tone(3000, samples=16000), 3000)
    assert log_mel_l1(added, bed + 0.5 * _tone(3000, samples=16000)) < 0.05


@pytest.mark.parametrize("instruction, rule", [("Add a dog barking", "louder"), ("Remove the dog", "quieter"), ("Replace the dog with rain", None)])
def test_editor_spectral_mode_follows_the_instruction(instruction, rule):
    """The editor's spectral mode is its audio mode with the instruction's bin rule applied first."""
    editor, audio = tiny_editor(), _noise(2000)
    run = editor.sample_clip(audio, instruction, 2, region=np.ones(2000, bool))
    mask = run.masks["region"]
    out = editor.finish(run, mask, "spectral")
    plain = editor.finish(run, mask, "audio")
    sample_mask = frames_to_samples(editor.clip_frames(mask, run), 128, 2000)
    edited = editor.finish(run, torch.ones_like(mask), "none")
    np.testing.assert_allclose(out, blend_spectral(edited, audio, sample_mask, rule), atol=1e-6)
    assert np.array_equal(out, plain) == (rule is None)
    # With a room tone: read where a half mask leaves the clip alone.
    editor.config.room_tone_quantile = 0.25
    half = mask.clone()
    half[:, :, : half.shape[2] // 2] = 0.0
    half_samples = frames_to_samples(editor.clip_frames(half, run), 128, 2000)
    assert (half_samples < 0.5).sum() >= 256 * 4  # enough STFT frames outside for a room tone
    with_room_tone = editor.finish(run, half, "spectral")
    np.testing.assert_allclose(with_room_tone, blend_spectral(edited, audio, half_samples, rule, 0.25), atol=1e-6)
    # The floor matters here (an add's bins never fall below the source, so it cannot lift them).
    assert np.allclose(with_room_tone, blend_spectral(edited, audio, half_samples, rule), atol=1e-6) == (rule == "louder")
    editor.config.spectral_level = [17, 9]
    by_level = editor.finish(run, half, "spectral")
    np.testing.assert_allclose(by_level, blend_spectral(edited, audio, half_samples, rule, 0.25, (17, 9)), atol=1e-6)
    if rule is not None:  # (this tiny edit is louder than the source everywhere: a replace then takes it whole either way)
        assert not np.allclose(by_level, with_room_tone, atol=1e-6)
    editor.config.room_tone_seconds = 0.02
    near = editor.finish(run, half, "spectral")
    np.testing.assert_allclose(near, blend_spectral(edited, audio, half_samples, rule, 0.25, (17, 9), room_tone_seconds=0.02), atol=1e-6)
    with pytest.raises(InputError, match="room_tone_quantile"):
        dataclasses.replace(editor.config, room_tone_quantile=1.5)
    with pytest.raises(InputError, match="room_tone_seconds"):
        dataclasses.replace(editor.config, room_tone_quantile=None, spectral_level=None)
    with pytest.raises(InputError, match="room_tone_seconds"):
        dataclasses.replace(editor.config, room_tone_seconds=0.0)
    with pytest.raises(InputError, match="spectral_level"):
        dataclasses.replace(editor.config, spectral_level=[16, 9])


def test_region_compositing_defaults_to_spectral():
    assert tiny_editor().config.region_composite == "every-step+spectral" and tiny_editor("ddpm").config.region_composite == "spectral"
    assert tiny_editor().edit(_noise(2000), "Add a dog", region=[(0.02, 0.06)]).composite == "every-step+spectral"


@pytest.mark.parametrize("composite", ["end", "every-step", "audio", "every-step+audio", "spectral", "every-step+spectral"])
def test_edit_reports_the_mask_over_the_whole_clip(composite):
    result = mask_head_editor().edit(_noise(3000), "Add a dog barking", composite=composite)
    assert result.mask.shape == (-(-3000 // 128),) and result.mask_method == "learned" and result.composite == composite
    assert np.all((result.mask >= 0) & (result.mask <= 1)) and result.audio.shape == (3000,)


def test_ddpm_editor_supports_end_compositing_with_diffedit():
    result = tiny_editor("ddpm").edit(_noise(700), "Add rain", steps=2, mask="diffedit", composite="end")
    assert result.nfe == 2 and result.mask.shape == (-(-700 // 128),) and np.isfinite(result.audio).all()


# -- CLI ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("editor")
    mask_head_editor().save_pretrained(folder)
    return folder


def test_cli_mask_out_writes_a_png(cli, tmp_path, model_dir):
    import soundfile as sf

    clip, out, png = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "mask.png"
    sf.write(clip, _noise(1600), 16000)
    code, stdout, stderr = cli("edit", str(clip), "Add a dog", "-o", str(out), "--model", str(model_dir), "--steps", "2",
                               "--mask", "diffedit", "--composite", "every-step", "--mask-out", str(png))
    assert code == 0, stderr
    assert png.read_bytes()[:8] == PNG and sf.info(out).frames == 1600
    assert "nothing was edited" not in stderr  # diffedit's mask always marks its strongest frame


def test_edit_result_is_untouched_only_when_its_mask_marks_no_frame():
    from foleyflow.pipelines.editor import EditResult

    result = lambda mask: EditResult(np.zeros(8, np.float32), "Add a dog", 0.1, 2, mask=mask)  # noqa: E731
    assert result(np.zeros(5, np.float32)).untouched
    assert not result(np.array([0, 0, 0.25, 0, 0], np.float32)).untouched
    assert not result(None).untouched  # no mask at all: the edit reached everywhere


def test_cli_says_when_the_mask_marked_nothing(cli, tmp_path):
    """A mask that marks no frame returns the recording unedited: the CLI says so (and how to edit
    anyway) instead of passing the input off as the edit. A learned mask at threshold 1 is empty
    (a sigmoid never reaches 1)."""
    import soundfile as sf

    folder = tmp_path / "editor"
    mask_head_editor(mask_threshold=1.0).save_pretrained(folder)
    clip, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(clip, _noise(1600), 16000)
    code, _, stderr = cli("edit", str(clip), "Add a dog", "-o", str(out), "--model", str(folder), "--steps", "2",
                          "--mask", "learned", "--composite", "audio")
    assert code == 0, stderr
    assert "the learned mask marked no frame, so nothing was edited" in stderr and "--region" in stderr
    np.testing.assert_allclose(sf.read(out, dtype="float32")[0], _noise(1600), atol=1e-4)


@pytest.mark.parametrize("args, message", [(["--mask", "magic"], "mask must be one of"), (["--composite", "twice"], "composite must be one of")])
def test_cli_bad_mask_or_composite_is_one_line(cli, tmp_path, model_dir, args, message):
    import soundfile as sf

    clip, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(clip, _noise(800), 16000)
    code, _, stderr = cli("edit", str(clip), "Add a dog", "-o", str(out), "--model", str(model_dir), *args)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1 and not out.exists()


# -- a region the user marks (--region) ----------------------------------------------------------
def test_region_samples_closed_forms():
    from foleyflow.pipelines.masks import region_samples

    region = region_samples([(0.1, 0.2), (0.35, 9.0)], 400, 1000)  # the second range is cut at the clip's end
    assert region.sum() == 100 + 50 and region[100:200].all() and region[350:].all() and not region[200:350].any()
    for ranges, message in [([], "at least one"), ([(0.3, 0.2)], "0 <= start < end"), ([(-0.1, 0.2)], "0 <= start < end"),
                            ([(0.5, 0.6)], "starts after the clip ends")]:
        with pytest.raises(InputError, match=message):
            region_samples(ranges, 400, 1000)


@pytest.mark.parametrize("composite", ["end", "audio", "every-step", "every-step+audio", "every-step+spectral"])
def test_region_edit_changes_only_the_marked_time(composite):
    """Outside the region (and its dilation and soft edges) the output is the source itself with
    audio compositing; the mask reported is the region's."""
    editor, audio = tiny_editor(), _noise(3000)
    result = editor.edit(audio, "Remove the dog", region=[(0.08, 0.12)], composite=composite)
    assert result.mask_method == "region" and result.composite == composite and result.audio.shape == (3000,)
    frame = 128  # samples per latent frame of the tiny codec
    assert np.all(result.mask[int(0.08 * 16000) // frame + 1 : int(0.12 * 16000) // frame]) == 1.0
    assert result.mask[:5].max() == 0.0 and result.mask[-3:].max() == 0.0
    outside = frames_to_samples(result.mask, frame, 3000) == 0
    if composite.endswith(("audio", "spectral")):
        assert np.array_equal(result.audio[outside], audio[outside])
    assert not np.allclose(result.audio[~outside], audio[~outside], atol=1e-3)


def test_region_every_step_keeps_the_source_path_outside():
    from foleyflow.pipelines.masks import region_samples

    editor, audio = tiny_editor(), _noise(1024)
    region = region_samples([(0.0, 0.008)], 1024, 16000)  # frame 0; dilation and soft edges reach frame 4
    run = editor.sample_clip(audio, "Add a dog", keep="region", region=region)
    mask = run.masks["region"]
    outside = (mask.expand_as(run.x_source) == 0)
    noise = torch.randn(run.x_source.shape, generator=torch.Generator().manual_seed(0))
    expected = RectifiedFlowPath(editor.config.sigma_min).x_t(run.x_source, noise, 1.0)
    assert outside.any() and (~outside).any()
    torch.testing.assert_close(run.x_edited[outside], expected[outside])


def test_parse_time_ranges():
    from foleyflow.pipelines.masks import parse_time_ranges

    assert parse_time_ranges("1.2-2.0, 3-3.5") == [(1.2, 2.0), (3.0, 3.5)] and parse_time_ranges(" ") == []
    for text in ("1.2", "a-b", "1-2-3"):
        with pytest.raises(InputError, match="START-END"):
            parse_time_ranges(text)


def test_region_errors():
    editor, audio = tiny_editor(), _noise(1024)
    with pytest.raises(InputError, match="not both"):
        editor.edit(audio, "Add a dog", region=[(0.01, 0.02)], mask="diffedit")
    with pytest.raises(InputError, match="needs compositing"):
        editor.edit(audio, "Add a dog", region=[(0.01, 0.02)], composite="none")
    with pytest.raises(InputError, match="needs the region"):
        editor.sample_clip(audio, "Add a dog", keep="region")
    with pytest.raises(InputError, match="samples, the clip"):
        editor.sample_clip(audio, "Add a dog", region=np.ones(10, bool))


def test_cli_region_edits_and_rejects_bad_ranges(cli, tmp_path, model_dir):
    import soundfile as sf

    clip, out, png = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "mask.png"
    source = _noise(1600)
    sf.write(clip, source, 16000)
    code, _, stderr = cli("edit", str(clip), "Remove the dog", "-o", str(out), "--model", str(model_dir), "--steps", "2",
                          "--region", "0.08-0.1", "--composite", "audio", "--mask-out", str(png))
    assert code == 0, stderr
    edited, _ = sf.read(out, dtype="float32")
    assert edited.shape == (1600,) and png.read_bytes()[:8] == PNG
    # frames 10-12 marked, dilated to 9, soft edges down to frame 6: samples before frame 5 are the source's (to 16-bit WAV precision)
    assert np.allclose(edited[:500], source[:500], atol=1e-4) and not np.allclose(edited[1300:], source[1300:], atol=1e-3)
    out.unlink()
    for args, message in [(["--region", "soon"], "START-END"), (["--region", ","], "at least one time range"), (["--region", "0.5-0.9"], "starts after the clip ends"),
                          (["--region", "0.01-0.02", "--mask", "diffedit"], "not both")]:
        code, _, stderr = cli("edit", str(clip), "Remove the dog", "-o", str(out), "--model", str(model_dir), *args)
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1 and not out.exists(), stderr


@pytest.mark.parametrize("samples", [1, 300, 512, 513, 4000])
def test_spectra_and_resynthesis_round_trip_any_length(samples):
    from foleyflow.pipelines.compositing import resynthesised, spectra

    signal = np.random.default_rng(samples).standard_normal(samples)
    np.testing.assert_allclose(resynthesised(spectra(signal)[0], samples), signal, atol=1e-9)
