"""Load on ``dualasr serve``: requests per second and p50 / p95 latency of
``POST /transcribe`` with 1, 4 and 8 concurrent clients on loopback, beside the
single-request transcribe time (the learner API called directly, same process,
same recording) measured in the same run, for the ratio of served to bare.

Each level stops after ``--requests`` requests or ``--seconds`` seconds,
whichever comes first, so a run ends by itself however slow the model.

    .venv/bin/python bench/serve_load.py runs/demo/packages/en-do --audio take.wav --workers 2
    .venv/bin/python bench/serve_load.py --fake --fake-seconds 0.2

``--fake`` serves the test suite's fake transcribe (``--fake-seconds`` of work
outside the GIL per call, as torch does) where no package exists: it measures
the service's own overhead and how its worker pool queues. Without ``--audio``
the recording is a 3-second tone.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fakes live beside the tests

from dualasr.learner.serve import create_app, model_key, running  # noqa: E402


def tone(seconds: float = 3.0, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, format="WAV")
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def bare_time(package, transcribe, audio, calls: int = 5) -> float:
    """Median seconds of ``calls`` transcribe calls (after one untimed warm-up)
    made as the server makes them: in a worker thread, not on the main thread,
    whose torch intra-op threads behave differently and, on a small shared
    machine, much more slowly, which would flatter the served figures."""

    def timed() -> float:
        t = time.perf_counter()
        transcribe(package, audio)
        return time.perf_counter() - t

    with ThreadPoolExecutor(1) as pool:
        pool.submit(timed).result()
        return statistics.median(pool.submit(timed).result() for _ in range(calls))


def load(url: str, data: bytes, clients: int, requests: int, seconds: float) -> tuple[list[float], float, int]:
    """Latencies of the requests that finished, the wall time, and the failures."""
    deadline = time.monotonic() + seconds
    issued = iter(range(requests))
    latencies, failures = [], 0

    def client() -> None:
        nonlocal failures
        with httpx.Client(base_url=url, timeout=max(seconds, 60)) as http:
            # next() on a shared iterator hands out each request number once across threads
            while time.monotonic() < deadline and next(issued, None) is not None:
                t = time.perf_counter()
                r = http.post("/transcribe", files={"audio": ("bench.wav", data, "audio/wav")})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t)
                else:
                    failures += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    return latencies, time.perf_counter() - t0, failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path, nargs="?", help="a packaged model (dualasr package)")
    ap.add_argument("--fake", action="store_true", help="serve the tests' fake transcribe instead of a package")
    ap.add_argument("--fake-seconds", type=float, default=0.2, help="work per fake call")
    ap.add_argument("--audio", type=Path, help="the recording to send (default: a 3 s tone)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--requests", type=int, default=40, help="at most this many requests per level")
    ap.add_argument("--seconds", type=float, default=60.0, help="at most this long per level")
    ap.add_argument("--workers", type=int, default=2, help="the server's worker pool")
    args = ap.parse_args()
    if bool(args.package) == args.fake:
        ap.error("give a package path or --fake")

    if args.fake:
        from tests.learner.serve_fakes import FakePackage, FakeTranscribe

        package, transcribe = FakePackage(), FakeTranscribe(seconds=args.fake_seconds)
        what = f"fake transcribe ({args.fake_seconds} s per call)"
    else:
        from dualasr.learner.package import load_package
        from dualasr.learner.transcribe import transcribe

        package, what = load_package(args.package), str(args.package)
    from dualasr.learner.transcribe import load_audio

    data = args.audio.read_bytes() if args.audio else tone()
    audio, duration = load_audio(data)
    bare = bare_time(package, transcribe, audio)

    app = create_app({model_key(package): package}, transcribe_fn=transcribe, workers=args.workers)
    print(f"model {what}  audio {duration:.2f} s  server workers {args.workers}  "
          f"at most {args.requests} requests / {args.seconds:g} s per level")  # fmt: skip
    print(f"single transcribe call (no HTTP, in a worker thread, median of 5): {bare * 1000:.0f} ms")
    print(f"{'clients':>7} {'requests':>8} {'failed':>6} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p50/bare':>8}")
    with running(app) as url:
        for clients in args.clients:
            latencies, wall, failures = load(url, data, clients, args.requests, args.seconds)
            if not latencies:
                print(f"{clients:>7} {0:>8} {failures:>6}  (no request finished)")
                continue
            p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
            print(f"{clients:>7} {len(latencies):>8} {failures:>6} {len(latencies) / wall:>7.2f} "
                  f"{p50 * 1000:>8.0f} {p95 * 1000:>8.0f} {p50 / bare:>8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
