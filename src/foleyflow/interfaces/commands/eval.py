"""`foleyflow eval`: the field's metrics on a folder of generated audio, and on edits."""

from __future__ import annotations

import json
from pathlib import Path

import click

from foleyflow.interfaces.cli import bench, cli

DEFAULT_CLIPS = "$FOLEYFLOW_HOME/corpus/clips.jsonl"
BACKBONE_HELP = "inworld | panns:PATH | vggish:PATH | tagger:PATH | clap:PATH | laion-clap:DIR (repeatable; later ones win)."


def _write_json(path: str, payload: dict) -> None:
    from foleyflow.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


def _common(function):
    options = [
        click.option("--backbone", "backbones", multiple=True, default=("inworld",), show_default=True, help=BACKBONE_HELP),
        click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write every figure, CI and per-clip score as JSON."),
        click.option("--bootstrap", "resamples", default=200, show_default=True, type=click.IntRange(min=0), help="Bootstrap resamples for the 95% CIs (0: none)."),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap and FAD-inf subsets."),
        click.option("--no-cache", is_flag=True, help="Recompute features instead of using $FOLEYFLOW_HOME/features."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@cli.group("eval", invoke_without_command=True)
@click.option("--generated", type=click.Path(file_okay=False), help="Folder of generated clips.")
@click.option("--reference", type=click.Path(file_okay=False), help="Folder of reference clips (paired by file name).")
@click.option("--captions", type=click.Path(dir_okay=False), help="CSV with name,caption: the prompt of each generated clip (CLAP score).")
@click.option("--times", type=click.Path(dir_okay=False), help="CSV with name,seconds: generation time per clip [default: timing.csv in --generated, if there].")
@click.option("--unpaired", is_flag=True, help="Do not pair files by name; KL is then not computed.")
@click.option("--fad-inf", "fad_inf", is_flag=True, help="Also extrapolate FAD to an infinite sample (FAD-inf).")
@_common
@click.pass_context
def eval_group(ctx, generated, reference, captions, times, unpaired, fad_inf, backbones, json_out, resamples, seed, no_cache):
    """FD, FAD, KL, IS, CLAP score and time per clip, each with a bootstrap 95% CI.

    Paper numbers need the public backbones: --backbone panns:Cnn14_16k_mAP=0.438.pth
    --backbone vggish:vggish-10086976.pth (local files; nothing is downloaded).
    """
    if ctx.invoked_subcommand is not None:
        return
    if not generated:
        raise click.UsageError("--generated DIR is required (or use a subcommand: foleyflow eval edit ...)")
    from foleyflow.evaluation.cache import FeatureCache
    from foleyflow.evaluation.editing import TIMING_FILE
    from foleyflow.evaluation.pairing import audio_files, pair_by_name
    from foleyflow.evaluation.suite import evaluate_sets, format_table, parse_backbones, read_table

    generated_files = audio_files(generated)
    if times is None and (Path(generated) / TIMING_FILE).is_file():
        times = str(Path(generated) / TIMING_FILE)  # written by `foleyflow generate --prompts`
    reference_files = audio_files(reference) if reference else None
    if reference_files is not None and not unpaired:
        pair_by_name(generated_files, reference_files)  # stops, naming the unpaired files
    report = evaluate_sets(
        generated_files,
        reference_files,
        parse_backbones(backbones),
        FeatureCache(enabled=not no_cache),
        captions=read_table(captions, "caption") if captions else None,
        times=read_table(times, "seconds", float) if times else None,
        paired=not unpaired,
        resamples=resamples,
        seed=seed,
        fad_infinity=fad_inf,
    )
    click.echo(f"{len(generated_files)} generated vs {len(reference_files or {})} reference clips; value [95% CI, {resamples} bootstrap resamples]")
    for role, name in report.info["backbones"].items():
        click.echo(f"  {role}: {name}")
    click.echo(format_table({Path(generated).name: report}))
    for metric, why in report.notes.items():
        click.echo(f"  {metric}: not computed ({why})")
    if json_out:
        _write_json(json_out, report.to_dict())
        click.echo(f"-> {json_out}")


@eval_group.command("edit")
@click.option("--manifest", required=True, type=click.Path(dir_okay=False), help="Edit manifest (JSON Lines or CSV).")
@click.option("--outputs", "outputs", required=True, multiple=True, metavar="[METHOD=]DIR",
              help="Folder of outputs named <id>.wav (+ optional timing.csv); repeat to compare methods.")
@_common
def eval_edit(manifest, outputs, backbones, json_out, resamples, seed, no_cache):
    """Edits vs their true targets: RFM-Edit Table 1/2 layout plus ground-truth metrics."""
    from foleyflow.evaluation.cache import FeatureCache
    from foleyflow.evaluation.editing import evaluate_method, format_ground_truth, load_manifest
    from foleyflow.evaluation.suite import format_table, parse_backbones

    items = load_manifest(manifest)
    chosen = parse_backbones(backbones)
    cache = FeatureCache(enabled=not no_cache)
    results = []
    for spec in outputs:
        name, _, folder = spec.rpartition("=")
        results.append(evaluate_method(name or "rfm-edit", folder, items, chosen, cache, resamples, seed))
    click.echo(f"{len(items)} edits; value [95% CI, {resamples} bootstrap resamples]")
    for role, name in chosen.names().items():
        click.echo(f"  {role}: {name}")
    click.echo(format_table({r.name: r.report for r in results}, "method", {r.name: {"input": r.prompt} for r in results}))
    click.echo("")
    click.echo(format_ground_truth(results))
    for metric, why in results[0].report.notes.items():
        click.echo(f"  {metric}: not computed ({why})")
    if json_out:
        payload = {r.name: r.report.to_dict() | {"input": r.prompt,
                                                 "ground_truth": {k: v.to_dict() for k, v in r.ground_truth.items()},
                                                 "by_task": {t: {k: v.to_dict() for k, v in f.items()} for t, f in r.by_task.items()}}
                   for r in results}
        _write_json(json_out, payload)
        click.echo(f"-> {json_out}")


def _held_out_options(function):
    options = [
        click.option("--clips", default=DEFAULT_CLIPS, show_default=True, help="Clip list: a corpus clips.jsonl, or JSON Lines with path, labels, caption, split."),
        click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"])),
        click.option("--seconds", default=None, type=click.FloatRange(min=0, min_open=True), help="Crop length [default: the one the model was trained on]."),
        click.option("--bootstrap", "resamples", default=1000, show_default=True, type=click.IntRange(min=0), help="Bootstrap resamples for the 95% CIs."),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@eval_group.command("tagger")
@click.option("--model", default="default", show_default=True, help="Tagger model folder ('default': the shipped one).")
@_held_out_options
def eval_tagger(model, clips, split, seconds, resamples, seed):
    """Held-out mAP of an in-world tagger (with its bootstrap 95% CI)."""
    from foleyflow.evaluation.heldout import format_backbone_figures, tagger_figures

    click.echo(format_backbone_figures(tagger_figures(model, clips, split, seconds, resamples, seed), None, split)[0])


@eval_group.command("clap")
@click.option("--model", default="default", show_default=True, help="CLAP model folder ('default': the shipped one).")
@_held_out_options
def eval_clap(model, clips, split, seconds, resamples, seed):
    """Held-out text-to-audio recall@1/@5 of an in-world CLAP (with bootstrap 95% CIs)."""
    from foleyflow.evaluation.heldout import clap_figures, clap_pairs, format_backbone_figures

    figures = clap_figures(clap_pairs(model, clips, split, seconds), resamples=resamples, seed=seed)
    click.echo(format_backbone_figures(None, figures, split)[0])


@bench.command("backbones")
@click.option("--tagger", default="default", show_default=True, help="Tagger model folder, 'default' (shipped) or 'none'.")
@click.option("--clap", default="default", show_default=True, help="CLAP model folder, 'default' (shipped) or 'none'.")
@_held_out_options
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the figures as JSON.")
@click.option("--write-calibration", is_flag=True, help="Store the CLAP's measured filter calibration in its config.json.")
def bench_backbones(tagger, clap, clips, split, seconds, resamples, seed, json_out, write_calibration):
    """The in-world backbones' held-out figures: tagger mAP and CLAP text-to-audio R@1/@5, with 95% CIs,
    and the CLAP's cosine of true vs mismatched caption pairs against the filter's 0.35."""
    from foleyflow.evaluation.heldout import (
        clap_calibration, clap_figures, clap_pairs, format_backbone_figures, format_calibration, tagger_figures,
    )

    tagger_result = None if tagger == "none" else tagger_figures(tagger, clips, split, seconds, resamples, seed)
    pairs = None if clap == "none" else clap_pairs(clap, clips, split, seconds)
    clap_result = pairs and clap_figures(pairs, resamples=resamples, seed=seed)
    calibration = pairs and clap_calibration(pairs, split)
    click.echo(f"value [95% CI, {resamples} bootstrap resamples]")
    for line in format_backbone_figures(tagger_result, clap_result, split) + (format_calibration(calibration) if calibration else []):
        click.echo(line)
    if write_calibration and calibration:
        from foleyflow.evaluation.heldout import write_calibration as store

        click.echo(f"calibration -> {store(clap, calibration)}")
    if json_out:
        _write_json(json_out, {"split": split, "clips": clips, "tagger": tagger_result and tagger_result.to_dict(),
                               "clap": clap_result and clap_result.to_dict(), "clap_calibration": calibration,
                               "bootstrap": resamples, "seed": seed})
        click.echo(f"-> {json_out}")
