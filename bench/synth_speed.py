"""Synthesis speed of the embedded corpus: utterances and audio-seconds per CPU-second.

CPU time counts this process and the synthesizer subprocesses it waited for
(``resource.getrusage``), so the figure is independent of how many cores run
in parallel; the build's wall time is about total CPU / cores.

    .venv/bin/python bench/synth_speed.py [--per-engine 6]
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from collections import defaultdict

from dualasr.data.synth import engines, english, korean
from dualasr.data.synth.errors import sample_surface


def cpu_seconds() -> float:
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-engine", type=int, default=6, help="utterances per engine and language")
    args = ap.parse_args()
    rng = random.Random(0)
    print(
        f"{'lang':4} {'engine':10} {'utts':>5} {'audio s':>8} {'CPU s':>7} {'utt/CPU-s':>10} {'audio-s/CPU-s':>14}"
    )
    totals = defaultdict(float)
    for lang, module in (("en", english), ("ko", korean)):
        sentences = module.generate_sentences(args.per_engine * 10, rng)
        voices = [v for v in engines.all_voices(lang) if v.id not in engines.missing_packages([v])]
        by_engine = defaultdict(list)
        for v in voices:
            by_engine[v.engine].append(v)
        for engine, vs in sorted(by_engine.items()):
            t_text = 0.0
            audio_s, n = 0.0, 0
            c0 = cpu_seconds()
            for i in range(args.per_engine):
                t = time.process_time()
                surface = sample_surface(sentences[i], module.RULES, 1, 3, rng) or None
                t_text += time.process_time() - t
                text = surface.surface if surface else sentences[i]
                audio = engines.synthesize(vs[i % len(vs)], text, rate=1.0, pitch=1.0)
                audio_s += len(audio) / 16000
                n += 1
            cpu = cpu_seconds() - c0
            totals["utts"] += n
            totals["audio"] += audio_s
            totals["cpu"] += cpu
            print(
                f"{lang:4} {engine:10} {n:5d} {audio_s:8.1f} {cpu:7.2f} {n / cpu:10.2f} {audio_s / cpu:14.1f}"
            )
    print(
        f"{'all':15} {int(totals['utts']):5d} {totals['audio']:8.1f} {totals['cpu']:7.2f} "
        f"{totals['utts'] / totals['cpu']:10.2f} {totals['audio'] / totals['cpu']:14.1f}"
    )


if __name__ == "__main__":
    main()
