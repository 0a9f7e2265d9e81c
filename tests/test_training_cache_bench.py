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
