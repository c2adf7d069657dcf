"""The learner service's API, through FastAPI's TestClient and through a real
uvicorn server on loopback: results, model choice, bad inputs, limits,
concurrency, and that nothing is written unless asked."""

from __future__ import annotations

import io
import itertools
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from dualasr.learner.serve import create_app, running
from tests.learner.serve_fakes import FakePackage, FakeTranscribe

PACKAGES = {"en-do": FakePackage(), "ko-do": FakePackage(language="ko", label="DO (ko)")}


def wav(seconds: float = 1.0, rate: int = 16000, channels: int = 1, fmt: str = "WAV") -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    buf = io.BytesIO()
    sf.write(buf, np.stack([tone] * channels, axis=1).astype(np.float32), rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture
def fake() -> FakeTranscribe:
    return FakeTranscribe()


@pytest.fixture
def client(fake):
    app = create_app(PACKAGES, transcribe_fn=fake, max_upload_bytes=200_000, max_seconds=3.0)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def post(client, data: bytes, name: str = "take.wav", **form):
    return client.post("/transcribe", files={"audio": (name, data, "audio/wav")}, data=form)


def test_transcribe_returns_the_result_json(client, fake):
    r = post(client, wav(1.0), text="the cat sat on the mat")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 1 and body["meaning"] == {**body["meaning"], "source": "user",
                                                        "text": "the cat sat on the mat"}  # fmt: skip
    assert {d["ErrorType"] for d in body["diff"]} == {"None", "Insertion", "Omission", "Mispronunciation"}
    assert body["model"]["language"] == "en"
    assert fake.calls[0]["text"] == "the cat sat on the mat"


def test_an_8khz_stereo_wav_reaches_transcribe_as_16khz_mono(client, fake):
    r = post(client, wav(1.5, rate=8000, channels=2))
    assert r.status_code == 200, r.text
    audio = fake.calls[0]["audio"]
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 1.5 * 16000) <= 16  # 1.5 s at 16 kHz
    assert fake.calls[0]["text"] is None and r.json()["meaning"]["source"] == "model"


def test_flac_is_accepted(client):
    assert post(client, wav(0.5, fmt="FLAC"), name="take.flac").status_code == 200


def test_models_lists_packages_with_provenance_and_limits(client):
    body = client.get("/models").json()
    assert [m["model"] for m in body["models"]] == ["en-do", "ko-do"]
    assert body["models"][0]["trained_on"]["corpus"].startswith("dualasr synth")
    assert body["limits"] == {"max_upload_bytes": 200_000, "max_seconds": 3.0, "max_text_chars": 1000}


@pytest.mark.parametrize("form, language", [({}, "en"), ({"model": "ko-do"}, "ko"), ({"language": "ko"}, "ko")])
def test_model_is_chosen_by_key_or_language(client, form, language):
    r = post(client, wav(0.5), **form)
    assert r.status_code == 200, r.text
    assert r.json()["model"]["language"] == language


@pytest.mark.parametrize("form, said", [({"model": "fr-do"}, "unknown model 'fr-do'"),
                                        ({"language": "fr"}, "no model for language 'fr'")])  # fmt: skip
def test_an_unknown_model_is_refused_naming_the_choices(client, form, said):
    r = post(client, wav(0.5), **form)
    assert r.status_code == 422
    assert said in r.json()["detail"] and "en" in r.json()["detail"]


BAD = {
    "empty": (b"", "take.wav", "empty"),
    "text file": (b"this is not a recording\n" * 20, "notes.txt", ""),
    "truncated header": (wav(1.0)[:30], "cut.wav", ""),
    "truncated data": (wav(1.0)[:16000], "cut.wav", ""),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_audio_is_refused_with_a_message_naming_the_file(client, fake, case):
    data, name, said = BAD[case]
    r = post(client, data, name=name)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail.startswith(f"{name}: ") and said in detail
    assert "Traceback" not in r.text
    assert fake.calls == []


@pytest.mark.parametrize("seconds", [7.0, 10.0])  # 224 kB: read, then refused; 320 kB: refused by its length
def test_an_oversize_upload_is_refused(client, fake, seconds):
    r = post(client, wav(seconds))
    assert r.status_code == 413
    assert r.json()["detail"] == "the upload is larger than this server's limit of 0.191 MB"
    assert fake.calls == []


def test_an_over_long_recording_is_refused(client, fake):
    r = post(client, wav(4.0, rate=8000), name="long.wav")  # 64 kB: under the size limit
    assert r.status_code == 422
    assert r.json()["detail"] == "long.wav: 4.0 s of audio is longer than this server's limit of 3 s"
    assert fake.calls == []


def test_missing_audio_and_overlong_text_are_one_sentence(client):
    r = client.post("/transcribe", data={"text": "hello"})
    assert r.status_code == 422 and r.json()["detail"].startswith("audio: ")
    r = post(client, wav(0.5), text="x" * 1001)
    assert r.status_code == 422 and r.json()["detail"].startswith("text: ")


def test_page_and_openapi_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="record"' in page.text and "http://" not in page.text and "https://" not in page.text
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/transcribe", "/models"}
    assert client.get("/docs").status_code == 200


def test_nothing_is_kept_unless_asked(tmp_path, monkeypatch, fake):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with TestClient(create_app(PACKAGES, transcribe_fn=fake)) as c:
        assert post(c, wav(0.5)).status_code == 200
    assert list(tmp_path.iterdir()) == []

    keep = tmp_path / "kept"
    with TestClient(create_app(PACKAGES, transcribe_fn=fake, keep_uploads=keep)) as c:
        assert post(c, wav(0.5), text="the cat").status_code == 200
    kept = sorted(p.suffix for p in keep.iterdir())
    assert kept == [".json", ".wav"]


@pytest.mark.slow
def test_real_server_answers_and_refuses_over_loopback(fake):
    app = create_app(PACKAGES, transcribe_fn=fake, max_upload_bytes=200_000, max_seconds=3.0)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert url.startswith("http://127.0.0.1:")
        ok = http.post("/transcribe", files={"audio": ("a.wav", wav(1.0, rate=8000, channels=2))})
        assert ok.status_code == 200 and len(fake.calls[0]["audio"]) == 16000
        big = http.post("/transcribe", files={"audio": ("big.wav", wav(10.0))})
        assert big.status_code == 413 and "limit of" in big.json()["detail"]
        for data, name, said in BAD.values():
            r = http.post("/transcribe", files={"audio": (name, data)})
            assert r.status_code == 422 and r.json()["detail"].startswith(name) and said in r.json()["detail"]
        long = http.post("/transcribe", files={"audio": ("long.wav", wav(4.0, rate=8000))})
        assert long.status_code == 422 and "longer than" in long.json()["detail"]


@pytest.mark.slow
def test_concurrent_requests_overlap_and_leave_the_event_loop_free():
    slow = FakeTranscribe(seconds=1.0)
    app = create_app(PACKAGES, transcribe_fn=slow, workers=4)
    data = wav(0.5)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as http:

        def one(_):
            return http.post("/transcribe", files={"audio": ("a.wav", data)}).status_code

        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            codes = pool.map(one, range(4))
            time.sleep(0.3)  # the four are inside transcribe now
            ping = time.monotonic()
            assert http.get("/models").status_code == 200
            ping = time.monotonic() - ping
            assert list(codes) == [200] * 4
        wall = time.monotonic() - t0
    assert ping < 0.5, f"/models took {ping:.2f} s while transcriptions ran: the event loop was blocked"
    assert wall < 2.5, f"4 requests of 1 s took {wall:.2f} s: they did not overlap"
    # Every call started before any ended.
    assert max(c["start"] for c in slow.calls) < min(c["end"] for c in slow.calls)


@pytest.mark.slow
def test_workers_bound_how_many_run_at_once():
    slow = FakeTranscribe(seconds=0.4)
    app = create_app(PACKAGES, transcribe_fn=slow, workers=1)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        with ThreadPoolExecutor(3) as pool:
            codes = list(pool.map(lambda _: http.post("/transcribe", files={"audio": ("a.wav", wav(0.5))}).status_code,
                                  range(3)))  # fmt: skip
    assert codes == [200] * 3
    spans = sorted((c["start"], c["end"]) for c in slow.calls)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_a_chunked_oversize_upload_is_cut_off(client, fake):
    """Without a Content-Length the limit counts the bytes as they arrive."""
    request = httpx.Request("POST", "http://x/transcribe", files={"audio": ("big.wav", wav(10.0))})
    body = request.read()
    r = client.post("/transcribe", content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
                    headers={"content-type": request.headers["content-type"]})  # fmt: skip
    assert r.status_code == 413 and "limit of" in r.json()["detail"]
    assert fake.calls == []


def test_cli_serve_loads_each_package_and_binds_loopback(monkeypatch, tmp_path, fake):
    import types

    import uvicorn
    from typer.testing import CliRunner

    from dualasr.cli import app as cli

    loaded = {"en.pkg": FakePackage(), "ko.pkg": FakePackage(language="ko")}
    stub = types.ModuleType("dualasr.learner.package")
    stub.load_package = lambda path, device="cpu": loaded[path.name]
    monkeypatch.setitem(sys.modules, stub.__name__, stub)
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: served.update(app=app, host=host, port=port))

    r = CliRunner().invoke(cli, ["serve", str(tmp_path / "en.pkg"), str(tmp_path / "ko.pkg"), "--max-seconds", "5"])
    assert r.exit_code == 0, r.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8000)
    with TestClient(served["app"]) as c:
        body = c.get("/models").json()
    assert [m["model"] for m in body["models"]] == ["en-do", "ko-do"] and body["limits"]["max_seconds"] == 5

    r = CliRunner().invoke(cli, ["serve", str(tmp_path / "en.pkg"), str(tmp_path / "en.pkg")])
    assert r.exit_code == 2 and "a second model 'en-do'" in r.output


def test_a_bug_is_a_json_500_without_traceback():
    def broken(package, audio, *, text=None):
        raise ValueError("secret internals")

    with TestClient(create_app(PACKAGES, transcribe_fn=broken), raise_server_exceptions=False) as c:
        r = post(c, wav(0.5))
    assert r.status_code == 500 and r.json() == {"detail": "Internal Server Error"}
