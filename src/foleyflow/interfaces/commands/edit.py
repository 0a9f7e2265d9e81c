"""`foleyflow edit` and `foleyflow bench edit` (`foleyflow train edit` comes from the recipe registry)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from foleyflow.errors import InputError
from foleyflow.interfaces.cli import bench, cli
from foleyflow.interfaces.params import AudioOutput, PngOutput
from foleyflow.interfaces.progress import progress_bar

UNTOUCHED_LISTED = 10  # ids named in the batch note on edits that changed nothing; the rest are counted


@cli.command()
@click.argument("audio_path", metavar="IN", required=False)
@click.argument("instruction", metavar="INSTRUCTION", required=False)
@click.option("-o", "--output", type=AudioOutput(), default=None,
              help="Audio to write: .wav, .flac, .ogg, .opus or .mp3, at the input's rate and channels and of its length.")
@click.option("--mono-16k", is_flag=True, help="Write the editor's own 16 kHz mono output instead of carrying the edit back to the input's rate and channels.")
@click.option("--manifest", type=click.Path(dir_okay=False), default=None,
              help="Instead of IN INSTRUCTION: an edit manifest (id, source, instruction; e.g. from `foleyflow data export-edits`); one WAV per row in --out-dir.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None, help="With --manifest: folder for <id>.wav and timing.csv.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Solver steps (default: the model's).")
@click.option("--cfg", "cfg_scale", type=click.FloatRange(min=0), default=None, help="Guidance scale on the instruction.")
@click.option("--t-start", type=click.FloatRange(min=0, max=1, max_open=True), default=None, help="Start time on the source path (4).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", default="default", show_default=True, help="'default' or an editor model folder.")
@click.option("--solver", type=click.Choice(["euler", "heun"]), default=None, help="ODE solver (default: the model's).")
@click.option("--attention-map", type=PngOutput(), default=None, help="PNG of token x time cross-attention.")
@click.option("--spectrogram", type=PngOutput(), default=None, help="PNG of the before/after log-mel.")
@click.option("--mask", "mask_method", default=None, help="Edit mask: learned, localiser, diffedit, attention or none (default: the model's).")
@click.option("--composite", default=None, help="Compositing: end, every-step, audio, every-step+audio, spectral, every-step+spectral or none (default: the model's).")
@click.option("--region", "regions", multiple=True, metavar="START-END",
              help="Edit only this time range (seconds, e.g. 1.2-2.0; repeatable) instead of a mask the editor estimates.")
@click.option("--mask-out", type=PngOutput(), default=None, help="PNG of the mask used, over the before/after log-mel.")
@click.option("--removal", type=click.Choice(["unet", "gains"]), default=None,
              help="How a remove (or a replace's removal) is made: the UNet's regenerated content, or the remover's gains on the recording (default: the model's).")
def edit(audio_path, instruction, output, mono_16k, manifest, out_dir, steps, cfg_scale, t_start, seed, model, solver, attention_map, spectrogram,
         mask_method, composite, regions, mask_out, removal) -> None:
    """Edit IN as INSTRUCTION says ("Add a dog barking", "Remove the bell", "Replace the rain with wind")."""
    from foleyflow.audio.io import SAMPLE_RATE, audio_output_format, channel_words, load_original, to_mono_at_rate, write_audio
    from foleyflow.pipelines.compositing import check_mode
    from foleyflow.pipelines.editor import Editor, audio_samples, check_instruction
    from foleyflow.pipelines.masks import check_method, parse_time_ranges

    if mask_method is not None:
        check_method(mask_method)
    if regions and mask_method is not None:
        raise click.UsageError("give --region or --mask, not both")
    ranges = [r for text in regions for r in parse_time_ranges(text)] if regions else None
    if composite is not None:
        check_mode(composite)
    options = {"steps": steps, "cfg_scale": cfg_scale, "t_start": t_start, "solver": solver, "mask": mask_method, "composite": composite,
               "removal": removal}
    if manifest is not None:
        if audio_path or instruction or output or attention_map or spectrogram or mask_out or regions or mono_16k:
            raise click.UsageError("--manifest replaces IN, INSTRUCTION, -o, --region, --mono-16k (a batch writes 16 kHz mono) and the PNG options; give --out-dir DIR")
        _edit_batch(manifest, out_dir, model, seed, options)
        return
    if audio_path is None or instruction is None or output is None:
        raise click.UsageError("give IN INSTRUCTION -o OUT.wav (or --manifest FILE --out-dir DIR)")
    check_instruction(instruction)
    recording = load_original(audio_path)  # bad input fails here, before any model is loaded
    source = audio_samples(to_mono_at_rate(recording.samples, recording.rate))
    out_rate = SAMPLE_RATE if mono_16k else recording.rate
    audio_output_format(output, out_rate, 1 if mono_16k else recording.samples.shape[1])  # a rate or channel count the format does not take, too
    if ranges is not None:
        from foleyflow.pipelines.masks import region_samples

        region_samples(ranges, source.size, SAMPLE_RATE)  # a range outside the clip, too
    editor = Editor.from_pretrained(model)
    with progress_bar("edit", "NFE") as report:
        result = editor.edit(source, instruction, steps, cfg_scale, t_start, seed, solver, attention=attention_map is not None,
                             mask=mask_method, composite=composite, region=ranges, progress=report, removal=removal)
    if mono_16k:
        write_audio(output, result.audio, like_subtype=recording.subtype)
    else:
        from foleyflow.pipelines.original_format import carry_edit_to_original

        carried = carry_edit_to_original(recording.samples, recording.rate, result.audio, source)
        write_audio(output, carried, recording.rate, like_subtype=recording.subtype)
    if spectrogram:
        _write_spectrogram(spectrogram, audio_path, source, result)
    if mask_out:
        _write_spectrogram(mask_out, audio_path, source, result, with_mask=True)
    if attention_map:
        from foleyflow.pipelines.attention import save_attention_png

        save_attention_png(attention_map, result.attention, result.tokens, result.seconds, title=f"cross-attention: {instruction}")
    channels = 1 if mono_16k else recording.samples.shape[1]
    written = f"{out_rate / 1000:g} kHz {channel_words(channels)}"
    click.echo(f"{audio_path}: {instruction!r} -> {output} ({result.seconds:.2f} s, {written}, {result.nfe} NFE, {result.elapsed_s:.2f} s)")
    if result.untouched:
        click.echo(f"note: the {result.mask_method} mask marked no frame, so nothing was edited; mark where with "
                   "--region START-END, or let the edit reach everywhere with --mask none", err=True)


def _edit_batch(manifest: str, out_dir: str | None, model: str, seed: int, options: dict) -> None:
    from foleyflow.evaluation.editing import load_manifest
    from foleyflow.pipelines.batch import edit_folder
    from foleyflow.pipelines.editor import Editor, check_instruction

    if out_dir is None:
        raise click.UsageError("--manifest needs --out-dir DIR")
    items = load_manifest(manifest, need_target=False)  # a bad manifest fails before the model loads
    for item in items:
        check_instruction(item.instruction)
        if not item.source.is_file():
            raise InputError(f"{manifest}: row {item.id}: no such source file {item.source}")
    editor = Editor.from_pretrained(model)
    done = edit_folder(editor, items, out_dir, seed=seed, **options)
    click.echo(f"{len(done.seconds)} edits -> {out_dir} ({sum(done.seconds.values()) / len(done.seconds):.2f} s per edit)")
    if done.untouched:
        method = options["mask"] or editor.config.mask  # one method for the whole batch
        shown = ", ".join(done.untouched[:UNTOUCHED_LISTED]) + (", ..." if len(done.untouched) > UNTOUCHED_LISTED else "")
        click.echo(f"note: on {len(done.untouched)} of {len(done.seconds)} edits the {method} mask marked no frame, so their "
                   f"WAV is the source unedited ({shown}); run those with --mask none, or one by one with --region START-END", err=True)


def _write_spectrogram(path, audio_path, source, result, with_mask: bool = False) -> None:
    from foleyflow.audio.mel import log_mel
    from foleyflow.plotting import save_spectrograms_png

    panels = [(f"before: {audio_path}", log_mel(source)[0].numpy()), (f"after: {result.instruction}", log_mel(result.audio)[0].numpy())]
    if not with_mask:
        save_spectrograms_png(path, panels)
        return
    label = f"mask: {result.mask_method}, composite: {result.composite}"
    save_spectrograms_png(path, panels, overlay=result.mask, overlay_label=label)


@bench.command("edit")
@click.option("--n", "count", type=click.IntRange(min=1), default=300, show_default=True, help="Held-out triplets, balanced over tasks.")
@click.option("--tasks", default=None, help="Comma-separated tasks to measure (default: add, remove and replace; a task's triplets are the same whichever others run, at the same per-task count).")
@click.option("--model", default="default", show_default=True, help="The editor to measure.")
@click.option("--baseline", default=None, help="A ddpm-objective editor folder, run at the same NFE.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Solver steps (default: the model's).")
@click.option("--cfg", "cfg_scale", type=click.FloatRange(min=0), default=None, help="Guidance scale of every editor in the run (default: each model's own).")
@click.option("--t-starts", default="0,0.01,0.1", show_default=True, help="t_start values of the plain recipe (mask none); '': the model's.")
@click.option("--methods", default=None, help="Comma-separated mask methods: none, learned, localiser, diffedit, attention, oracle (default: all the model can run).")
@click.option("--removal", type=click.Choice(["unet", "gains"]), default=None, help="How every row removes: 'unet' (the network's content) or 'gains' (the editor's remover), a marked region's rows included (default: the model's removal and region_removal).")
@click.option("--composite", "composites", default=None, help="Comma-separated compositing modes of the mask rows (default: every mode but none).")
@click.option("--split", default="test", show_default=True)
@click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False), help="Editing set folder (default: the one `foleyflow data build` wrote).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--replace-onset", default="aligned", show_default=True,
              help="'aligned': score replace against the target with its new event at the best-aligned onset (the onset cannot be inferred, as for add); 'true': at the data set's own onset (the scoring before session 15).")
@click.option("--ceiling", is_flag=True, help="Add, for each mask row composited at the end, its twin with the true target's latent as content: what a perfect editor would score.")
@click.option("--perfect-sampler", is_flag=True, help="Add for add and replace the reference row of a perfect sampler: the target with its new event drawn from another clip of the class, placed and levelled as the data set does.")
@click.option("--tagger", default="default", show_default=True, help="Tagger folder for the class-presence table (the edited classes' presence before and after); 'none' skips it.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--per-triplet", is_flag=True, help="With --json: each row's L1 triplet by triplet, and the triplets' ids (to pair two runs on the same triplets).")
@click.option("--out", "output", default=None, type=click.Path(dir_okay=False), help="Markdown file (BENCHMARKS.md) whose section for these rows is replaced.")
def bench_edit(count, tasks, model, baseline, steps, cfg_scale, t_starts, methods, removal, composites, split, data_dir, seed, replace_onset, ceiling,
               perfect_sampler, tagger, as_json, per_triplet, output) -> None:
    """Editing benchmark on held-out triplets: log-mel L1 to the true target and the gap closed."""
    import shlex
    import sys

    from foleyflow.benchmarks import machine_description, write_section
    from foleyflow.evaluation.presence import ClassPresence
    from foleyflow.pipelines.edit_bench import MASKED_COMPOSITES, TASKS, format_table, run_edit_bench, test_triplets
    from foleyflow.pipelines.masks import BENCH_METHODS, check_method
    from foleyflow.pipelines.compositing import check_mode

    values = _parse_t_starts(t_starts)
    method_list = None if methods is None else [check_method(m, BENCH_METHODS) for m in _names(methods, "--methods")]
    composite_list = list(MASKED_COMPOSITES) if composites is None else [check_mode(c) for c in _names(composites, "--composite")]
    task_list = list(TASKS) if tasks is None else _names(tasks, "--tasks")
    if count < len(task_list):
        raise InputError(f"--n {count} is less than one triplet per task ({len(task_list)} tasks)")
    presence = None if tagger == "none" else ClassPresence.from_pretrained(tagger)
    triplets = test_triplets(split, count, seed, data_dir, task_list, replace_onset, perfect_sampler)
    report = run_edit_bench(model, triplets, baseline=baseline, steps=steps, t_starts=values, seed=seed, methods=method_list,
                            composites=composite_list, progress=True, ceiling=ceiling, per_triplet=per_triplet, presence=presence,
                            cfg_scale=cfg_scale, removal=removal)
    table = format_table(report)
    click.echo(json.dumps(report, indent=2) if as_json else table)
    if output:
        command = "foleyflow bench edit " + " ".join(shlex.quote(a) for a in sys.argv[3:]) if sys.argv[1:3] == ["bench", "edit"] else "foleyflow bench edit"
        # The model is in the title when it is not the shipped one, so two models keep two sections.
        part = (f"model {model}; " if model != "default" else "") + (f"tasks {tasks}; " if tasks is not None else "") + (f"removal {removal}; " if removal is not None else "") + f"methods {methods or 'all'}; composite {composites or 'all'}; t_starts {t_starts or 'none'}; n {count}" + ("; ceiling" if ceiling else "") + ("; perfect sampler" if perfect_sampler else "") + (f"; replace onset {replace_onset}" if replace_onset != "aligned" else "")
        write_section(output, f"Editor benchmark ({part})", f"`{command}`\n\nMachine: {machine_description()}.\n\n{table}")


@bench.command("pair")
@click.argument("report_a", type=click.Path(exists=True, dir_okay=False))
@click.argument("row_a")
@click.argument("report_b", type=click.Path(exists=True, dir_okay=False))
@click.argument("row_b", required=False)
@click.option("--resamples", type=click.IntRange(min=0), default=2000, show_default=True)
@click.option("--true-target", is_flag=True, help="Pair add and replace on their L1 to the data set's own target (the runs' second figure) instead of the best-aligned one.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def bench_pair(report_a, row_a, report_b, row_b, resamples, true_target, as_json) -> None:
    """Pair two `bench edit --json --per-triplet` rows triplet by triplet: ROW_A of REPORT_A minus
    ROW_B (default: the same name) of REPORT_B, per task, with a paired bootstrap 95% CI."""
    from foleyflow.pipelines.edit_bench import pair_rows

    reports = []
    for path in (report_a, report_b):
        try:
            reports.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: not a bench edit JSON report ({error})") from None
    row_b = row_b or row_a
    paired = pair_rows(reports[0], row_a, reports[1], row_b, resamples, true_target=true_target)
    if as_json:
        click.echo(json.dumps(paired, indent=2))
        return
    for task, entry in paired.items():
        d = entry["difference"]
        click.echo(f"{task}: n {entry['n']}, {row_a} minus {row_b}: {d['value']:+.3f} [{d['ci95_low']:+.3f}, {d['ci95_high']:+.3f}], "
                   f"lower on {entry['share_lower']:.0%} of triplets")


def _names(text: str, option: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InputError(f"{option} needs at least one name")
    return names


def _parse_t_starts(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--t-starts expects comma-separated numbers, got {text!r}") from None
    if not all(0.0 <= v < 1.0 for v in values):
        raise InputError(f"--t-starts values must lie in [0, 1), got {text!r}")
    return values


@bench.command("carry")
@click.option("--n", "count", type=click.IntRange(min=1), default=100, show_default=True, help="Held-out remove triplets.")
@click.option("--model", default="default", show_default=True, help="The editor to measure.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["val", "test"]))
@click.option("--data", "data_dir", default=None, help="Editing data set folder (default: the cache's).")
@click.option("--out", "output", default=None, type=click.Path(dir_okay=False), help="Also write the table (markdown) here.")
def bench_carry(count, model, split, data_dir, output) -> None:
    """What carrying an edit back to a 48 kHz stereo recording keeps, against the 16 kHz output."""
    import shlex
    import sys

    from foleyflow.atomic import atomic_path
    from foleyflow.pipelines.carry_bench import carry_benchmark, markdown
    from foleyflow.pipelines.edit_bench import test_triplets
    from foleyflow.pipelines.editor import Editor

    items = test_triplets(split, count, 0, data_dir, tasks=["remove"])
    editor = Editor.from_pretrained(model)
    command = "foleyflow " + " ".join(shlex.quote(arg) for arg in sys.argv[1:]) if sys.argv[0].endswith(("foleyflow", "__main__.py")) else "foleyflow bench carry"
    table = markdown(carry_benchmark(editor, items), command)
    click.echo(table)
    if output:
        with atomic_path(output) as tmp:
            tmp.write_text(table)
