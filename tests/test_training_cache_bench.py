"""The cache benchmark measures both paths on real (tiny) work and reports a consistent ratio."""

from foleyflow.training import cache_bench


def test_cache_bench_reports_both_paths(tmp_path, monkeypatch):
    from foleyflow.models.text import TextEncoder
    from foleyflow.models.vae import build_vae

    # The "cpu" VAE narrowed further: the test checks the bookkeeping, not the speed.
    monkeypatch.setattr(cache_bench, "build_encoders", lambda preset: (build_vae("cpu", block_out_channels=[8, 8, 8], norm_num_groups=4).eval(), TextEncoder("minilm").eval()))
    report = cache_bench.measure(2, "cpu", 2, tmp_path)
    assert report["items"] == 2 and report["on_the_fly_s_per_item"] > 0 and report["cached_s_per_item"] > 0
    assert report["speedup"] == report["on_the_fly_s_per_item"] / report["cached_s_per_item"]
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 4  # two latents, two captions


def test_training_measurement_times_both_paths_through_the_trainer(tmp_path):
    from training_helpers import TINY_UNET

    report = cache_bench.measure_training(1, "cpu", "cpu-small", 2, tmp_path, clip_seconds=0.32,
                                          vae_overrides={"block_out_channels": [8, 8, 8], "norm_num_groups": 4}, unet_overrides=dict(TINY_UNET))
    assert report["cached_s_per_step"] > 0 and report["on_the_fly_s_per_step"] > 0 and report["one_off_fill_s"] > 0
    assert report["speedup"] == report["on_the_fly_s_per_step"] / report["cached_s_per_step"]
    assert report["speedup_cpu"] == report["on_the_fly_cpu_s_per_step"] / report["cached_cpu_s_per_step"] and report["cached_cpu_s_per_step"] > 0
    assert report["fill_items"] == 4 and len(list((tmp_path / "cache").rglob("*.safetensors"))) == 8  # 4 latents, 4 captions
