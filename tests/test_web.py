"""`foleyflow serve`: the web page over the editor and the generator (tiny models, a real HTTP server on a free port)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from editor_tiny import mask_head_editor, tiny_editor
from training_helpers import make_tiny_generator

from foleyflow.errors import InputError
from foleyflow.interfaces.web import Studio, make_server, parse_multipart


@contextlib.contextmanager
def serving(editor_dir, generator_dir):
    """The studio over these model folders on a free port, in a thread; yields its base URL."""
    httpd = make_server(Studio(str(editor_dir), str(generator_dir)), port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    editor_dir = tmp_path_factory.mktemp("editor")
    tiny_editor().save_pretrained(editor_dir)
    with serving(editor_dir, make_tiny_generator(tmp_path_factory.mktemp("generator"))) as url:
        yield url


def _multipart(fields: dict[str, str | tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "foleyflowtestboundary"
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data = value
            head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: application/octet-stream'
        else:
            head, data = f'Content-Disposition: form-data; name="{name}"', value.encode("utf-8")
        parts.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _post(url: str, fields) -> tuple[int, str]:
    body, content_type = _multipart(fields)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")


def _wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _page_audio(page: str, expected_rate: int = 16000) -> np.ndarray:
    match = re.search(r'src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert match, page[:500]
    audio, rate = sf.read(io.BytesIO(base64.b64decode(match.group(1))), dtype="float32")
    assert rate == expected_rate
    return audio


def test_the_page_has_both_forms(server):
    with urllib.request.urlopen(server + "/", timeout=30) as response:
        page = response.read().decode("utf-8")
    assert response.status == 200 and 'action="/edit"' in page and 'action="/generate"' in page
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(server + "/nope", timeout=30)


def test_edit_a_marked_region_returns_the_input_length_and_keeps_the_rest(server):
    source = (0.1 * np.random.default_rng(0).standard_normal(1600)).astype(np.float32)
    status, page = _post(server + "/edit", {"audio": ("street.wav", _wav(source)), "instruction": "Remove the dog",
                                            "region": "0.08-0.1", "mask": "", "steps": "2", "seed": "0"})
    assert status == 200, page
    audio = _page_audio(page)
    assert audio.shape == (1600,) and "mask region" in page and 'src="data:image/png;base64,' in page
    assert np.allclose(audio[:500], source[:500], atol=1e-4) and not np.allclose(audio[1300:], source[1300:], atol=1e-3)


def test_edit_of_a_24_bit_upload_comes_back_24_bit(server):
    buffer = io.BytesIO()
    sf.write(buffer, 0.1 * np.random.default_rng(2).standard_normal(1600), 16000, subtype="PCM_24", format="WAV")
    status, page = _post(server + "/edit", {"audio": ("take.wav", buffer.getvalue()), "instruction": "Add a dog", "steps": "1"})
    assert status == 200, page
    match = re.search(r'src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert sf.info(io.BytesIO(base64.b64decode(match.group(1)))).subtype == "PCM_24"


def test_edit_of_a_stereo_upload_comes_back_at_its_rate_and_channels(server):
    stereo = (0.1 * np.random.default_rng(1).standard_normal((2205, 2))).astype(np.float32)  # 0.05 s at 44.1 kHz
    status, page = _post(server + "/edit", {"audio": ("take.wav", _wav(stereo, 44100)), "instruction": "Add a dog", "steps": "2", "region": " "})
    assert status == 200, page
    assert _page_audio(page, expected_rate=44100).shape == (2205, 2) and "at 44.1 kHz, 2 channels" in page
    assert page.count("data:audio/wav;base64,") == 1 and "download WAV" in page  # the link reuses the player's copy


@pytest.mark.parametrize("fields, message", [
    ({"audio": ("notes.txt", b"not audio"), "instruction": "Remove the dog"}, "notes.txt: not a readable audio file"),
    ({"instruction": "Remove the dog"}, "choose an audio file"),
    ({"audio": ("a.wav", b"RIFF"), "instruction": "   "}, "instruction"),
    ({"audio": ("a.wav", b"RIFF"), "instruction": "Remove it", "region": "0.1-0.2", "mask": "diffedit"}, "not both"),
    ({"audio": ("a.wav", b"RIFF"), "instruction": "Remove it", "region": "soon"}, "START-END"),
    ({"audio": ("a.wav", b"RIFF"), "instruction": "Remove it", "steps": "many"}, "steps must be a whole number"),
    ({"audio": ("a.wav", b"RIFF"), "instruction": "Remove it", "removal": "erase"}, "removal must be one of"),
    ({"audio": ("a.wav", _wav(np.zeros(800, np.float32))), "instruction": "Remove it", "removal": "gains"}, "needs an editor with a remover"),
])
def test_bad_edit_input_is_one_line_and_400(server, fields, message):
    status, page = _post(server + "/edit", fields)
    assert status == 400
    error = re.search(r'<p class="error">(.*?)</p>', page).group(1)
    assert message in error and "\n" not in error and "Traceback" not in page


def test_region_outside_the_clip_is_rejected(server):
    status, page = _post(server + "/edit", {"audio": ("a.wav", _wav(np.zeros(800, np.float32))), "instruction": "Remove it", "region": "1-2"})
    assert status == 400 and "starts after the clip ends" in page


def test_generate_from_a_prompt(server):
    status, page = _post(server + "/generate", {"prompt": "rain falls", "duration": "0.2", "steps": "2", "seed": "3"})
    assert status == 200, page
    assert _page_audio(page).shape == (3200,) and "Generated: rain falls" in page
    status, page = _post(server + "/generate", {"prompt": " "})
    assert status == 400 and "the prompt is empty" in page


def test_multipart_parsing_and_a_busy_port(server):
    body, content_type = _multipart({"a": "1", "f": ("x.wav", b"\x00\x01")})
    form = parse_multipart(content_type, body)
    assert form["a"].data == b"1" and form["f"].data == b"\x00\x01" and form["f"].filename == "x.wav"
    with pytest.raises(InputError, match="multipart/form-data"):
        parse_multipart("application/x-www-form-urlencoded", b"a=1")
    port = int(server.rsplit(":", 1)[1])
    with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{port}"):
        make_server(Studio(), port=port)


def test_cli_serve_reports_a_busy_port_in_one_line(cli, server):
    code, _, stderr = cli("serve", "--port", server.rsplit(":", 1)[1])
    assert code == 2 and "cannot listen on" in stderr and len(stderr.strip().splitlines()) == 1


def test_edit_says_when_the_mask_marked_nothing(tmp_path):
    """An editor whose mask marks no frame (a learned mask at threshold 1): the page says nothing
    was edited, and how to edit anyway."""
    editor_dir = tmp_path / "editor"
    mask_head_editor(mask_threshold=1.0).save_pretrained(editor_dir)
    source = (0.1 * np.random.default_rng(2).standard_normal(1600)).astype(np.float32)
    with serving(editor_dir, make_tiny_generator(tmp_path / "generator")) as url:
        status, page = _post(url + "/edit", {"audio": ("a.wav", _wav(source)), "instruction": "Add a dog", "steps": "2", "mask": "learned"})
    assert status == 200, page
    assert "nothing was edited" in page


def test_the_page_can_ask_how_far_an_edit_is_and_jobs_take_turns():
    """GET /progress answers while an edit runs (network evaluations done of total); a second job waits."""
    reached, release = threading.Event(), threading.Event()

    class PausingEditor:  # the tiny editor, held after its second network evaluation until released
        def __init__(self):
            self.editor, self.entered = tiny_editor(steps=4), 0

        def edit(self, *args, progress, **kwargs):
            self.entered += 1

            def report(done, total):
                progress(done, total)
                if done == 2 and not release.is_set():
                    reached.set()
                    release.wait(60)
            return self.editor.edit(*args, progress=report, **kwargs)

    studio, pausing = Studio(), PausingEditor()
    studio._models["editor"] = pausing
    httpd = make_server(studio, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    fields = {"audio": ("a.wav", _wav((0.1 * np.random.default_rng(2).standard_normal(1600)).astype(np.float32))),
              "instruction": "Remove the dog"}
    replies = []
    jobs = [threading.Thread(target=lambda: replies.append(_post(url + "/edit", fields))) for _ in range(2)]
    try:
        jobs[0].start()
        assert reached.wait(60)
        with urllib.request.urlopen(url + "/progress", timeout=30) as response:
            assert response.headers["Content-Type"] == "application/json"
            assert json.loads(response.read()) == {"busy": True, "job": "edit", "done": 2, "total": 4, "unit": "network evaluations"}
        jobs[1].start()
        time.sleep(0.3)
        assert pausing.entered == 1  # the second edit waits for the first to finish
        release.set()
        for job in jobs:
            job.join(120)
        assert [status for status, _ in replies] == [200, 200] and pausing.entered == 2
        with urllib.request.urlopen(url + "/progress", timeout=30) as response:
            assert json.loads(response.read())["busy"] is False
        with urllib.request.urlopen(url + "/", timeout=30) as response:
            page = response.read().decode("utf-8")
        assert 'id="status"' in page and 'fetch("/progress")' in page
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
