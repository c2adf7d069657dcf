"""Training throughput of dualasr's DO model next to ESPnet2's speech-translation
model with an extra ASR decoder (``ESPnetSTModel``: a shared encoder, two
hybrid CTC/attention decoders), the same sizes, loss mix and batches, in one run.

    bash bench/espnet_env.sh      # once: ESPnet into bench/.venv-espnet (several GB)
    .venv/bin/python bench/compare_espnet.py
    .venv/bin/python bench/compare_espnet.py --data runs/demo/data/en --threads 2 --rounds 25

ESPnet is built from the DO model of ``--config`` (``model`` section and
``study.models.do``): Conformer encoder (rel-pos "latest" self-attention,
macaron, conv module, Conv2dSubsampling), Transformer decoders, the surface
output as ESPnet's ASR side (``extra_asr_decoder`` + ``ctc``), the meaning
output as its ST side (``decoder``), with ``asr_weight``, ``mtlalpha`` and
``st_mtlalpha`` set so ESPnet's loss is dualasr's weighted sum term by term.
Both read the same raw fbank, normalised by the same global CMVN and
per-utterance mean.

Three models train in three persistent processes, each in its own venv,
driven in turn by this one: after warm-up, every round gives each model
``--steps`` steps (the order rotating per round), so load from elsewhere on
the machine falls on all of them alike. A step is forward + backward +
gradient-norm clipping (5) + Adam at the same lr, each toolkit's own (dualasr's
trainer: fused AdamW without decay; ESPnet's ``optim: adam``: ``torch.optim.Adam``),
cycling over the same
``--batches`` batches. Reported at each ``--threads``: median audio-seconds per
wall-second (and per CPU-second of the model's process) over the rounds, and
the ratios dualasr / ESPnet, like for like (dualasr with ESPnet's d_model
subsampling channels) and as configured, as the median over rounds of the
ratio within each round (robust to other jobs' load) beside the ratio of the
medians.

Data: ``--data`` (a corpus dir with ``cuts_train.jsonl.gz``), else the demo's
English corpus at runs/demo/data/en when it exists, else a small English corpus
synthesised once with conf/smoke.yaml's synth section into runs/bench/espnet-data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ESPNET_VENV = BENCH / ".venv-espnet"
DEMO_DATA = ROOT / "runs/demo/data/en"
SYNTH_DATA = ROOT / "runs/bench/espnet-data"
FRAME_S = 0.01  # fbank frame shift
GRAD_CLIP = 5.0


def espnet_python(venv: Path) -> Path | None:
    python = venv / "bin/python"
    return python if (venv / ".installed").exists() and python.exists() else None


def corpus(data: Path | None) -> Path:
    """The corpus dir to take batches from (see the module docstring)."""
    if data is not None:
        return data
    if (DEMO_DATA / "cuts_train.jsonl.gz").exists():
        return DEMO_DATA
    from dualasr.config import load_config
    from dualasr.data.synth.corpus import build_corpus, describe

    cfg = load_config(ROOT / "conf/smoke.yaml")
    cfg = cfg.model_copy(update={"synth": cfg.synth.model_copy(update={"languages": ["en"]})})
    print(f"no demo corpus at {DEMO_DATA}: a small synthetic English one in {SYNTH_DATA} (built on first use)",
          flush=True)  # fmt: skip
    for report in build_corpus(cfg, SYNTH_DATA, allow_fewer_voices=True, progress=False):
        print(describe(report), flush=True)
    return SYNTH_DATA / "en"


def write_batch_file(args, path: Path) -> dict:
    """The first ``args.batches`` training batches of the corpus, drawn by
    dualasr's loader (duration buckets, the config's seed), written for both
    workers; returns what to print."""
    import torch
    from _step_server import OUTPUTS, write_batches

    from dualasr.config import load_config, model_config
    from dualasr.data.features import compute_features
    from dualasr.data.manifest import load_manifest
    from dualasr.train.data import build_tokenizers, make_loader

    cfg = load_config(args.config)
    mcfg = model_config(cfg, "do")
    data = corpus(args.data)
    fbank = compute_features(data, splits=("train",), progress=False)
    cuts = load_manifest(fbank / "train.jsonl.gz", check_audio=False)
    cmvn = json.loads((fbank / "cmvn.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        toks = build_tokenizers(cuts, OUTPUTS, cfg.text, Path(tmp))
    max_duration = args.max_duration or cfg.train.max_duration
    loader = make_loader(cuts, toks, max_duration, shuffle=True, seed=cfg.seed, num_buckets=cfg.train.num_buckets)
    batches = []
    for batch in loader:
        row = {"feats": batch["feats"], "feat_lens": batch["feat_lens"]}
        for o in OUTPUTS:
            row[o], row[f"{o}_lens"] = batch["targets"][o]
        batches.append(row)
        if len(batches) == args.batches:
            break
    spec = {
        "model": mcfg.model_dump(mode="json"),
        "vocab": {o: len(t) for o, t in toks.items()},
        "lr": cfg.train.lr,
        "grad_clip": GRAD_CLIP,
        "frame_shift": FRAME_S,
    }
    write_batches(path, spec, cmvn["mean"], cmvn["std"], batches)
    secs = [float(b["feat_lens"].sum()) * FRAME_S for b in batches]
    return {
        "data": data,
        "vocab": spec["vocab"],
        "weights": mcfg.weights,
        "d_model": mcfg.d_model,
        "seconds": secs,
        "utterances": [len(b["feat_lens"]) for b in batches],
        "max_duration": max_duration,
        "torch": torch.__version__,
    }


class Worker:
    """One model in its own process (protocol in ``bench/_step_server.py``)."""

    def __init__(self, name: str, argv: list[str], threads: int, log: Path):
        self.name = name
        self.log = log
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        with open(log, "a") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         text=True, env=env, cwd=ROOT)  # fmt: skip
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = "".join(self.log.read_text().splitlines(keepends=True)[-30:])
            raise SystemExit(f"{self.name}: worker stopped (exit {self.proc.returncode}); its stderr ends:\n{tail}")
        return json.loads(line)

    def steps(self, n: int) -> dict:
        self.proc.stdin.write(json.dumps({"steps": n}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def measure(args, batch_file: Path, d_model: int, threads: int, espnet: Path, log: Path) -> tuple[dict, dict]:
    """Per model: the workers' ready info (with ``losses``: the loss after
    warm-up and after the last round, and ``load``: the 1-minute load average
    before and after) and the per-round throughputs, ``{"wall": audio-s per
    wall-s, "cpu": audio-s per CPU-s}``."""
    load = os.getloadavg()[0]
    d = str(d_model)
    models = {
        "dualasr (configured)": [sys.executable, str(BENCH / "_dualasr_worker.py"), str(batch_file)],
        f"dualasr ({d} ch)": [sys.executable, str(BENCH / "_dualasr_worker.py"), str(batch_file),
                              "--subsampling-channels", d],  # fmt: skip
        "ESPnet": [str(espnet), str(BENCH / "_espnet_worker.py"), str(batch_file)],
    }
    workers = {}
    try:
        for name, argv in models.items():
            workers[name] = Worker(name, [*argv, "--threads", str(threads)], threads, log)
        for w in workers.values():
            w.info["losses"] = [w.steps(args.warmup)["loss"]]
        rates = {name: [] for name in workers}
        names = list(workers)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                out = workers[name].steps(args.steps)
                rates[name].append({"wall": out["audio"] / out["seconds"], "cpu": out["audio"] / out["cpu"]})
                workers[name].info["losses"][1:] = [out["loss"]]
        for w in workers.values():
            w.info["load"] = (load, os.getloadavg()[0])
        return {n: w.info for n, w in workers.items()}, rates
    finally:
        for w in workers.values():
            w.close()


def print_params(info: dict[str, dict]) -> None:
    names = list(info)
    rows = list(dict.fromkeys(k for i in info.values() for k in i["params"]))
    print(f"{'parameters':<22}" + "".join(f"{n:>22}" for n in names))
    for row in rows:
        cells = [info[n]["params"].get(row) for n in names]
        fmt = (lambda v: f"{v:>22,}") if row != "subsampling channels" else (lambda v: f"{v:>22}")
        print(f"{row:<22}" + "".join(fmt(v) if v is not None else f"{'-':>22}" for v in cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "conf/demo.yaml", help="study config; its DO model is compared")
    ap.add_argument("--data", type=Path, help="corpus dir with cuts_train.jsonl.gz (default: see above)")
    ap.add_argument("--max-duration", type=float, help="batch seconds (default: the config's train.max_duration)")
    ap.add_argument("--batches", type=int, default=4, help="distinct batches, cycled")
    ap.add_argument("--steps", type=int, default=2, help="steps per model per round")
    ap.add_argument("--rounds", type=int, default=15, help="timed rounds (medians over them are reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads per model")
    ap.add_argument("--espnet-venv", type=Path, default=ESPNET_VENV)
    args = ap.parse_args()
    if min(args.warmup, args.steps, args.rounds, args.batches) < 1:
        ap.error("--warmup, --steps, --rounds and --batches must be at least 1")

    espnet = espnet_python(args.espnet_venv)
    if espnet is None:
        print(f"skipped: no ESPnet virtualenv at {args.espnet_venv}. Install it (several GB from PyPI) with\n"
              f"    bash bench/espnet_env.sh\nthen run this again.")  # fmt: skip
        return
    tmp = Path(tempfile.mkdtemp(prefix="compare-espnet-"))
    try:
        batch_file = tmp / "batches.npz"
        about = write_batch_file(args, batch_file)
        log = tmp / "workers.log"
        results = {t: measure(args, batch_file, about["d_model"], t, espnet, log) for t in args.threads}
    except BaseException:
        print(f"(worker logs kept in {tmp})", file=sys.stderr)
        raise
    shutil.rmtree(tmp)
    report(args, about, results)


def report(args, about: dict, results: dict) -> None:
    info = results[args.threads[0]][0]
    esp = info["ESPnet"]
    secs = about["seconds"]
    print(f"data {about['data']}: {len(secs)} batches (max_duration {about['max_duration']:g} s) of "
          f"{', '.join(f'{s:.1f}' for s in secs)} s, {', '.join(map(str, about['utterances']))} utterances; "
          f"vocab surface {about['vocab']['surface']}, meaning {about['vocab']['meaning']}")  # fmt: skip
    print(f"dualasr on torch {about['torch']}; ESPnet {esp['espnet']} on torch {esp['torch']}")
    w = about["weights"]
    print("loss: " + " + ".join(f"{v:g} {k}" for k, v in w.items() if v) + f"; ESPnet {esp['loss']}")
    print()
    print_params(info)
    print()
    names = list(info)
    conf, like = names[0], names[1]
    print(f"{args.rounds} rounds of {args.steps} steps per model after {args.warmup} warm-up steps. Throughput "
          "in audio-s per wall-s: median (min-max over rounds); per CPU-s of the model's process: median "
          "(counts every thread, and is not lowered by other processes' load); training loss after warm-up "
          "-> at the end")  # fmt: skip
    for t, (info_t, rates) in results.items():
        label = f"{t} thread{'s' if t > 1 else ''}"
        before, after = info_t[conf]["load"]
        print(f"{label} (load average {before:.1f} before, {after:.1f} after)")
        med = {n: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu")} for n, rs in rates.items()}
        for n, rs in rates.items():
            wall = [r["wall"] for r in rs]
            first, last = info_t[n]["losses"]
            print(f"  {n:<22} wall {med[n]['wall']:6.1f} ({min(wall):.1f}-{max(wall):.1f})  "
                  f"CPU {med[n]['cpu']:6.1f}  loss {first:.1f} -> {last:.1f}")  # fmt: skip
        for n in (like, conf):
            # The ratio within a round pairs measurements taken seconds apart,
            # so it holds up best when other jobs come and go on the machine.
            per_round = [a["wall"] / b["wall"] for a, b in zip(rates[n], rates["ESPnet"], strict=True)]
            print(f"  {n} / ESPnet: {statistics.median(per_round):.2f}x (median over rounds of the ratio "
                  f"within a round; {min(per_round):.2f}-{max(per_round):.2f}); ratio of the medians "
                  f"{med[n]['wall'] / med['ESPnet']['wall']:.2f}x wall, {med[n]['cpu'] / med['ESPnet']['cpu']:.2f}x "
                  "CPU")  # fmt: skip


if __name__ == "__main__":
    main()
