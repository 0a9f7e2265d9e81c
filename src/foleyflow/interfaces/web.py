"""`foleyflow serve`: a web page over the library. Edit an uploaded recording from an instruction
(optionally only inside time ranges you mark), or generate sound from a text prompt; listen to the
result, download it, and see its log-mel (with the edit mask drawn over it).

Standard library only (``http.server`` and ``email``'s multipart parser): an offline machine has
no web framework, and one form per job needs none. Requests are served on threads, so that the page
can ask ``GET /progress`` how far the running job is (the editor reports every network
evaluation); jobs themselves take turns behind one lock, so the models never run concurrently.
Each model loads on the first request that needs it and stays loaded.
Every failure a user can cause (a file that is not audio, an empty instruction, a range outside
the clip) comes back as the page with one line saying what was wrong, and status 400.
"""

from __future__ import annotations

import base64
import html
import io
import json
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import soundfile as sf

from foleyflow.errors import InputError

if TYPE_CHECKING:
    from foleyflow.audio.io import Recording

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
IDLE = {"busy": False, "job": "", "done": 0, "total": 0, "unit": ""}  # what GET /progress says between jobs
MASK_CHOICES = ("", "learned", "localiser", "diffedit", "attention", "none")  # "": the model's default
REMOVAL_CHOICES = ("", "gains", "unet")  # "": the model's default (pipelines.editor.REMOVALS)


@dataclass
class Result:
    title: str
    audio: np.ndarray  # (samples,) or (frames, channels)
    details: str
    spectrogram_png: bytes = b""
    sample_rate: int = 16000
    subtype: str = "PCM_16"  # the WAV's sample format: an edit keeps its upload's where WAV takes it


@dataclass
class Studio:
    """The models behind the page, loaded on first use (``"default"``: the shipped ones)."""

    editor_name: str = "default"
    generator_name: str = "default"
    _models: dict = field(default_factory=dict)
    _turn: threading.Lock = field(default_factory=threading.Lock)  # one job at a time
    _status: dict = field(default_factory=lambda: dict(IDLE))

    def run(self, job: str, form: dict[str, "FormField"]) -> Result:
        """Run ``job`` ("edit" or "generate") when no other job runs; ``status`` follows it meanwhile."""
        with self._turn:
            self._status = {**IDLE, "busy": True, "job": job}  # replaced whole: a reader never sees half an update
            try:
                return getattr(self, job)(form)
            finally:
                self._status = {**IDLE, "job": job}

    def status(self) -> dict:
        """{"busy", "job", "done", "total", "unit"}: the running job and how far it is, ``done`` of
        ``total`` ``unit`` (an edit's network evaluations, a generation's sampling steps; 0 of 0 while
        the models load)."""
        return dict(self._status)

    def _progress(self, unit: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            self._status = {**self._status, "done": done, "total": total, "unit": unit}

        return report

    def editor(self):
        from foleyflow.pipelines.editor import Editor

        return self._load("editor", lambda: Editor.from_pretrained(self.editor_name))

    def generator(self):
        from foleyflow.generator import Generator

        return self._load("generator", lambda: Generator.from_pretrained(self.generator_name))

    def _load(self, key, load):
        if key not in self._models:
            self._models[key] = load()
        return self._models[key]

    def edit(self, form: dict[str, "FormField"]) -> Result:
        from foleyflow.audio.io import channel_words, to_mono_at_rate
        from foleyflow.audio.mel import log_mel
        from foleyflow.pipelines.editor import check_instruction, check_removal_name
        from foleyflow.pipelines.masks import check_method, parse_time_ranges
        from foleyflow.pipelines.original_format import carry_edit_to_original

        upload = form.get("audio")
        if upload is None or not upload.data:
            raise InputError("choose an audio file to edit")
        instruction = check_instruction(form_text(form, "instruction"))
        mask = form_text(form, "mask") or None
        if mask is not None:
            check_method(mask)
        removal = form_text(form, "removal") or None
        if removal is not None:
            check_removal_name(removal)  # before the upload is decoded; the remover's presence once the editor is loaded
        region_text = form_text(form, "region").strip()
        region = parse_time_ranges(region_text) if region_text else None
        if region is not None and mask is not None:
            raise InputError("give a region or a mask method, not both")
        steps, seed = form_number(form, "steps", int), form_number(form, "seed", int) or 0
        recording = decode_upload(upload)  # the costly check last
        original, rate = recording.samples, recording.rate
        source = to_mono_at_rate(original, rate)
        result = self.editor().edit(source, instruction, steps=steps, seed=seed, mask=mask, region=region, removal=removal,
                                    progress=self._progress("network evaluations"))
        panels = [("before", log_mel(source)[0].numpy()), (f"after: {instruction}", log_mel(result.audio)[0].numpy())]
        png = spectrogram_png(panels, result.mask, f"mask: {result.mask_method}, composite: {result.composite}")
        details = (f"{upload.filename or 'upload'}: {source.size / 16000:.2f} s at {rate / 1000:g} kHz, {channel_words(original.shape[1])}; "
                   f"mask {result.mask_method}, composite "
                   f"{result.composite}; {result.nfe} network evaluations, {result.elapsed_s:.2f} s")
        if result.untouched:
            details += "; the mask marked no frame, so nothing was edited: give a region, or choose mask none"
        subtype = recording.subtype if sf.check_format("WAV", recording.subtype) else "PCM_16"
        return Result(f"Edited: {instruction}", carry_edit_to_original(original, rate, result.audio, source), details, png, rate, subtype)

    def generate(self, form: dict[str, "FormField"]) -> Result:
        from foleyflow.audio.mel import log_mel
        from foleyflow.generator import check_prompt

        prompt = check_prompt(form_text(form, "prompt"))
        duration, steps, seed = form_number(form, "duration"), form_number(form, "steps", int), form_number(form, "seed", int) or 0
        started = time.perf_counter()
        audio = self.generator().generate(prompt, steps=steps, seed=seed, duration=duration, on_step=self._progress("sampling steps"))[0]
        png = spectrogram_png([(prompt, log_mel(audio)[0].numpy())])
        return Result(f"Generated: {prompt}", audio, f"{audio.size / 16000:.2f} s in {time.perf_counter() - started:.2f} s", png)


# -- form fields -------------------------------------------------------------------------------
@dataclass
class FormField:
    data: bytes
    filename: str | None = None


def parse_multipart(content_type: str, body: bytes) -> dict[str, FormField]:
    """A multipart/form-data body -> {field name: FormField}."""
    if not content_type.startswith("multipart/form-data"):
        raise InputError("the form must be sent as multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise InputError("the form could not be read")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = FormField(part.get_payload(decode=True) or b"", part.get_filename())
    return fields


def form_text(form: dict[str, FormField], name: str) -> str:
    return form[name].data.decode("utf-8", errors="replace") if name in form else ""


def form_number(form: dict[str, FormField], name: str, kind: type = float) -> int | float | None:
    """The field as ``kind`` (int or float); None when it is left blank."""
    text = form_text(form, name).strip()
    try:
        return kind(text) if text else None
    except ValueError:
        raise InputError(f"{name} must be {'a whole number' if kind is int else 'a number'}, got {text!r}") from None


def decode_upload(upload: FormField) -> Recording:
    """The uploaded file as it is (``audio.io.Recording``), checked as `foleyflow edit` checks a file."""
    from foleyflow.audio.io import load_original

    name = Path(upload.filename or "upload").name
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("upload" + Path(name).suffix)
        path.write_bytes(upload.data)
        try:
            return load_original(path)
        except InputError as error:
            raise InputError(str(error).replace(str(path), name)) from None


# -- page --------------------------------------------------------------------------------------
def wav_bytes(audio: np.ndarray, sample_rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(np.asarray(audio, np.float32), -1.0, 1.0), sample_rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def spectrogram_png(panels, overlay: np.ndarray | None = None, overlay_label: str = "edit mask") -> bytes:
    from foleyflow.plotting import save_spectrograms_png

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spectrogram.png"
        save_spectrograms_png(path, panels, overlay=overlay, overlay_label=overlay_label)
        return path.read_bytes()


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>foleyflow</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
form{{border:1px solid #ccc;padding:1em;margin:1em 0}} label{{display:block;margin:.4em 0}}
.error{{color:#b00;font-weight:bold}} img{{max-width:100%}}</style></head><body>
<h1>foleyflow</h1>
<p id="status" aria-live="polite"></p>
{message}
<form action="/edit" method="post" enctype="multipart/form-data"><h2>Edit a recording</h2>
<label>Recording <input type="file" name="audio" accept="audio/*" required></label>
<label>Instruction <input type="text" name="instruction" size="50" placeholder="Remove the bell" required></label>
<label>Region, seconds (optional) <input type="text" name="region" placeholder="1.2-2.0, 3.0-3.5"></label>
<label>Mask <select name="mask">{mask_options}</select></label>
<label>Removal <select name="removal">{removal_options}</select></label>
<label>Steps <input type="number" name="steps" min="1" placeholder="model default"></label>
<label>Seed <input type="number" name="seed" value="0"></label>
<button type="submit">Edit</button></form>
<form action="/generate" method="post" enctype="multipart/form-data"><h2>Generate from text</h2>
<label>Prompt <input type="text" name="prompt" size="50" placeholder="A dog barks while rain falls" required></label>
<label>Duration, seconds <input type="number" name="duration" step="0.01" min="0.1" placeholder="model default"></label>
<label>Steps <input type="number" name="steps" min="1" placeholder="model default"></label>
<label>Seed <input type="number" name="seed" value="0"></label>
<button type="submit">Generate</button></form>
<script>
// While a form is sent the page stays as it is: say how far the job is, from GET /progress.
let polling = null;
for (const form of document.querySelectorAll("form")) form.addEventListener("submit", () => {{
  for (const button of document.querySelectorAll("button")) button.disabled = true;
  const line = document.getElementById("status"), started = Date.now();
  const poll = async () => {{
    const seconds = Math.round((Date.now() - started) / 1000);
    try {{
      const s = await (await fetch("/progress")).json();
      line.textContent = s.total ? `${{s.job}}: ${{s.done}} of ${{s.total}} ${{s.unit}}, ${{seconds}} s`
                                 : `${{s.job || "waiting"}}: working, ${{seconds}} s`;
    }} catch (error) {{ line.textContent = `working, ${{seconds}} s`; }}
    polling = setTimeout(poll, 500);
  }};
  poll();
}});
// Back from a result (the browser's page cache): no job of this page runs; the forms work again.
window.addEventListener("pageshow", () => {{
  clearTimeout(polling);
  document.getElementById("status").textContent = "";
  for (const button of document.querySelectorAll("button")) button.disabled = false;
}});
</script>
</body></html>"""


def render_page(result: Result | None = None, error: str | None = None) -> bytes:
    options = "".join(f'<option value="{m}">{m or "model default"}</option>' for m in MASK_CHOICES)
    removal_options = "".join(f'<option value="{m}">{m or "model default"}</option>' for m in REMOVAL_CHOICES)
    message = ""
    if error is not None:
        message = f'<p class="error">{html.escape(error)}</p>'
    elif result is not None:
        audio = base64.b64encode(wav_bytes(result.audio, result.sample_rate, result.subtype)).decode("ascii")
        message = (f"<h2>{html.escape(result.title)}</h2><p>{html.escape(result.details)}</p>"
                   f'<audio id="result" controls src="data:audio/wav;base64,{audio}"></audio> '
                   # the link takes the player's data when clicked: one copy of the WAV in the page, not two
                   '<a download="foleyflow.wav" href="#" onclick="this.href = document.getElementById(\'result\').src">download WAV</a>')
        if result.spectrogram_png:
            message += f'<p><img alt="log-mel" src="data:image/png;base64,{base64.b64encode(result.spectrogram_png).decode("ascii")}"></p>'
    return PAGE.format(message=message, mask_options=options, removal_options=removal_options).encode("utf-8")


def make_handler(studio: Studio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?")[0]
            if path == "/progress":
                self._send(200, json.dumps(studio.status()).encode("utf-8"), "application/json")
            elif path == "/":
                self._send(200, render_page())
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:  # noqa: N802
            job = {"/edit": "edit", "/generate": "generate"}.get(self.path)
            if job is None:
                self._send(404, b"not found", "text/plain")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_UPLOAD_BYTES:
                self._send(413, render_page(error=f"the upload is larger than {MAX_UPLOAD_BYTES // 2**20} MB"))
                return
            try:
                result = studio.run(job, parse_multipart(self.headers.get("Content-Type", ""), self.rfile.read(length)))
            except InputError as error:
                self._send(400, render_page(error=str(error)))
                return
            except Exception as error:  # a bug, not the user's input: one line on the page, the traceback on stderr
                traceback.print_exc()
                self._send(500, render_page(error=f"internal error: {type(error).__name__}: {error}"))
                return
            self._send(200, render_page(result))

        def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def make_server(studio: Studio, host: str = "127.0.0.1", port: int = 7860) -> ThreadingHTTPServer:
    """Port 0 picks a free port (``server.server_address`` says which)."""
    try:
        return ThreadingHTTPServer((host, port), make_handler(studio))  # daemon threads: exit never waits on a request
    except OSError as error:
        raise InputError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
