"""`foleyflow data fetch | build | stats | ingest | export-clips | export-edits`: the sound corpus and the editing data set."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from foleyflow.interfaces.cli import cli

SYNTHETIC_CORPUS = "corpus"  # sub-folder of --out that holds the synthetic corpus


@cli.group()
def data() -> None:
    """The sound corpus and the RFM-Edit editing data set (cached under $FOLEYFLOW_HOME)."""


def _corpus_option(func):
    return click.option("--corpus", "corpus_dir", default=None, type=click.Path(file_okay=False),
                        help="Corpus folder [default: $FOLEYFLOW_HOME/corpus].")(func)


@data.command()
@_corpus_option
@click.option("--source", "sources", multiple=True, default=("debian", "speech", "instruments"), show_default=True,
              type=click.Choice(["debian", "speech", "instruments", "debian-extra", "synthetic"]),
              help="Sources to use (repeatable). 'debian-extra': more hand-labelled Debian packages"
                   " (Tux Paint's stamps, Wesnoth's sounds), used only when named.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1), help="Processes for clip processing.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def fetch(corpus_dir: str | None, sources: tuple[str, ...], workers: int, no_progress: bool) -> None:
    """Download, unpack, render and process the real-sound corpus."""
    from foleyflow.data.corpus import split_counts
    from foleyflow.data.fetch import fetch_corpus
    from foleyflow.data.paths import default_corpus_dir

    corpus_dir = Path(corpus_dir) if corpus_dir else default_corpus_dir()
    began = time.perf_counter()
    clips = fetch_corpus(corpus_dir, tuple(sources), workers=workers, progress=not no_progress, say=click.echo)
    counts = split_counts(clips)
    click.echo(f"corpus: {len(clips)} clips, {len({c.label for c in clips})} classes "
               f"(train {counts['train']}, val {counts['val']}, test {counts['test']}) in {time.perf_counter() - began:.1f} s -> {corpus_dir}")


def _clap_filter(model: str, threshold: str | None):
    """(scorer or None, threshold) from the build command's --clap and --clap-threshold."""
    from foleyflow.data.clap_filter import CLAP_THRESHOLD
    from foleyflow.errors import InputError

    if model == "none":
        return None, CLAP_THRESHOLD
    from foleyflow.evaluation.clap_filter import ClapScorer

    scorer = ClapScorer(model)
    if threshold is None:
        return scorer, CLAP_THRESHOLD
    if threshold == "calibrated":
        if scorer.calibrated_threshold is None:
            raise InputError(f"--clap-threshold calibrated: {scorer.name} has no measured threshold (run `foleyflow bench backbones --write-calibration`)")
        return scorer, float(scorer.calibrated_threshold)
    try:
        return scorer, float(threshold)
    except ValueError:
        raise InputError(f"--clap-threshold {threshold!r}: expected a number or 'calibrated'") from None


@data.command()
@click.option("--source", type=click.Choice(["corpus", "synthetic"]), default="corpus", show_default=True,
              help="'corpus': a corpus folder (fetched or ingested); 'synthetic': make a procedural one in OUT/corpus.")
@_corpus_option
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: $FOLEYFLOW_HOME/datasets/editing].")
@click.option("--bases", default=1000, show_default=True, type=click.IntRange(min=1), help="Base clips X (6 triplets each).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--chunk-size", default=64, show_default=True, type=click.IntRange(min=1), help="Scenes per resumable chunk.")
@click.option("--speed-range", default=0.0, show_default=True, type=click.FloatRange(min=0.0, max=1.0),
              help="Augment train scenes: each part plays at a speed in [1/(1+S), 1+S] (pitch and tempo); val and test unchanged.")
@click.option("--force", is_flag=True, help="Discard a previous build in OUT instead of resuming it.")
@click.option("--materialize", is_flag=True, help="Also write every scene's three mixes as WAVs under OUT/audio/.")
@click.option("--clap", "clap_model", default="default", show_default=True,
              help="CLAP of the filter: 'default' (the shipped in-world CLAP), a CLAP model folder, or 'none' (keep every triplet).")
@click.option("--clap-threshold", default=None,
              help="Keep a triplet when source and target both score above this [default: the paper's 0.35];"
                   " 'calibrated': the threshold measured for this CLAP on held-out pairs (its config.json).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def build(source: str, corpus_dir: str | None, out_dir: str | None, bases: int, seed: int, workers: int,
          chunk_size: int, speed_range: float, force: bool, materialize: bool, clap_model: str, clap_threshold: str, no_progress: bool) -> None:
    """Build the editing triplets (six per base clip) as recipes; resumable and idempotent."""
    from foleyflow.data.builder import BuildConfig, build_editing_set
    from foleyflow.data.paths import default_corpus_dir, default_editing_dir
    from foleyflow.data.stats import editing_stats, format_editing_stats

    scorer, threshold = _clap_filter(clap_model, clap_threshold)

    out = Path(out_dir) if out_dir else default_editing_dir()
    if source == "synthetic":
        corpus = Path(corpus_dir) if corpus_dir else out / SYNTHETIC_CORPUS
        if not (corpus / "clips.jsonl").is_file():
            from foleyflow.data.fetch import fetch_corpus

            fetch_corpus(corpus, ("synthetic",), workers=1, progress=False, say=lambda _: None)
    else:
        corpus = Path(corpus_dir) if corpus_dir else default_corpus_dir()
    config = BuildConfig(bases=bases, seed=seed, chunk_size=chunk_size, speed_range=speed_range)
    began = time.perf_counter()
    build_editing_set(corpus, out, config, workers=workers, force=force, progress=not no_progress, scorer=scorer,
                      clap_threshold=threshold, skipped_reason="--clap none")
    if materialize:
        from foleyflow.data.materialize import materialize_mixes

        materialize_mixes(out, progress=not no_progress)
    for line in format_editing_stats(editing_stats(out)):
        click.echo(line)
    click.echo(f"built in {time.perf_counter() - began:.1f} s -> {out}")


@data.command()
@_corpus_option
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Editing set folder [default: $FOLEYFLOW_HOME/datasets/editing].")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def stats(corpus_dir: str | None, out_dir: str | None, as_json: bool) -> None:
    """Counts per class, split and task, and total durations, of the corpus and the editing set."""
    from foleyflow.data.paths import default_corpus_dir, default_editing_dir
    from foleyflow.data.stats import corpus_stats, editing_stats, format_corpus_stats, format_editing_stats
    from foleyflow.errors import InputError

    corpus = Path(corpus_dir) if corpus_dir else default_corpus_dir()
    out = Path(out_dir) if out_dir else default_editing_dir()
    facts = {}
    if (corpus / "clips.jsonl").is_file():
        facts["corpus"] = corpus_stats(corpus)
    if (out / "triplets.jsonl").is_file():
        facts["editing"] = editing_stats(out)
    if not facts:
        raise InputError(f"neither a corpus in {corpus} nor an editing set in {out} (run `foleyflow data fetch` / `data build`)")
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    if "corpus" in facts:
        for line in format_corpus_stats(facts["corpus"]):
            click.echo(line)
    if "editing" in facts:
        for line in format_editing_stats(facts["editing"]):
            click.echo(line)


@data.command()
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="AudioCaps-style captions CSV.")
@click.option("--audio-dir", required=True, type=click.Path(file_okay=False), help="Folder with the clips.")
@_corpus_option
@click.option("--split", type=click.Choice(["train", "val", "test", "auto"]), default="auto", show_default=True,
              help="Split of every clip in this CSV; 'auto' splits by recording (youtube_id).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def ingest(csv_path: str, audio_dir: str, corpus_dir: str | None, split: str, workers: int, no_progress: bool) -> None:
    """Turn a captioned corpus (CSV + audio folder) into a foleyflow corpus that `data build` accepts."""
    from foleyflow.data.ingest import ingest_captioned
    from foleyflow.data.paths import foleyflow_home

    corpus = Path(corpus_dir) if corpus_dir else foleyflow_home() / "ingested"
    clips, skipped = ingest_captioned(csv_path, audio_dir, corpus, split=split, workers=workers, progress=not no_progress)
    singles = sum(c.num_events == 1 for c in clips)
    click.echo(f"ingested {len(clips)} clips ({singles} single-event, {skipped} rows skipped: missing audio or > 3 events"
               f" are kept out of bases only) -> {corpus}")


@data.command("export-clips")
@_corpus_option
@click.option("--split", default="test", show_default=True, help="Split the clips come from.")
@click.option("--n", "count", default=100, show_default=True, type=click.IntRange(min=2), help="Clips, spread over caption groups (classes).")
@click.option("--seed", default=0, show_default=True, help="Seed of the clip order.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for reference/ and prompts.csv.")
def export_clips_command(corpus_dir: str | None, split: str, count: int, seed: int, out_dir: str) -> None:
    """Held-out clips and their captions, for `foleyflow generate --prompts` and `foleyflow eval --reference`."""
    from foleyflow.data.export import export_clips, held_out_prompts
    from foleyflow.data.paths import default_corpus_dir

    corpus = Path(corpus_dir) if corpus_dir else default_corpus_dir()
    prompts = held_out_prompts(corpus / "clips.jsonl", split, count, seed)
    csv_path = export_clips(prompts, out_dir)
    groups = len({p.caption for p in prompts})
    click.echo(f"{len(prompts)} {split} clips ({groups} distinct captions) -> {Path(out_dir) / 'reference'}; prompts -> {csv_path}")


@data.command("export-edits")
@click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False),
              help="Editing set folder [default: $FOLEYFLOW_HOME/datasets/editing].")
@click.option("--split", default="test", show_default=True, help="Split the triplets come from.")
@click.option("--n", "count", default=300, show_default=True, type=click.IntRange(min=3), help="Triplets, balanced over add/remove/replace.")
@click.option("--seed", default=0, show_default=True, help="Seed of the triplet choice (the same as `foleyflow bench edit --seed`).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for source/, target/ and manifest.jsonl.")
def export_edits_command(data_dir: str | None, split: str, count: int, seed: int, out_dir: str) -> None:
    """Held-out editing triplets as WAVs, for `foleyflow edit --manifest` and `foleyflow eval edit`."""
    from foleyflow.data.export import export_edits
    from foleyflow.pipelines.edit_bench import test_triplets

    items = test_triplets(split, count, seed, data_dir)
    manifest = export_edits(items, out_dir)
    click.echo(f"{len(items)} {split} triplets -> {out_dir}; manifest -> {manifest}")
