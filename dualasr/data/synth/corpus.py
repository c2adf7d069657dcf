"""``dualasr synth``: build the embedded synthetic English + Korean L2 corpus.

For each language:

1. meaning sentences from the package's grammar, split into disjoint
   train / dev / test pools; with a prompt pool (``synth.prompts``) the
   training split and ``test_seen`` read the training prompts several times
   (:func:`pick_readings`), ``test_unseen`` reads sentences of its own;
2. each utterance gets a target ED bin so that the per-bin shares are exactly
   the configured ones (largest-remainder rounding per split), and a surface form
   from the language's error rules (:func:`dualasr.data.synth.errors.sample_surface`);
3. a voice (held-out voices for dev and test, so their speakers are unseen in
   training), a speaking rate, a pitch factor, a speed-perturbation factor and
   a noise level;
4. audio synthesized from the *surface* form, in parallel over CPU cores;
5. manifests ``<out>/<lang>/cuts_<split>.jsonl.gz`` written atomically.

Every decision of steps 1-3 is drawn in the parent process from RNGs seeded by
``(seed, language, ...)``, and noise from a per-utterance seed, so the corpus is
identical for a seed whatever the number of workers. A language whose manifests
all exist is skipped (re-running finishes an interrupted build; audio already
written is reused).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import multiprocessing as mp
import os
import random
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from dualasr.atomic import atomic_path
from dualasr.config import SPLITS, Config, SynthConfig
from dualasr.data.manifest import (
    ManifestError,
    Skipped,
    Utterance,
    atomic_write_text,
    cuts_from_utterances,
    write_manifest,
    write_skipped,
)
from dualasr.data.synth import engines, english, korean
from dualasr.data.synth.errors import sample_surface
from dualasr.errors import DualasrError
from dualasr.text.divergence import ED_BINS

log = logging.getLogger(__name__)

LANGUAGE_MODULES = {"en": english, "ko": korean}
# The synthetic learners: English is spoken by L1-Korean learners (the English
# rules are Korean transfer errors); Korean by L1-English learners.
LEARNER_L1 = {"en": "ko", "ko": "en"}
# Skipping more than this share of utterances on synthesis errors aborts the build.
MAX_FAILED_SHARE = 0.01


class SynthError(DualasrError, RuntimeError):
    """The corpus cannot be built as configured (missing engines, voices, sentences)."""


@dataclass(frozen=True)
class Job:
    """One utterance to synthesize: everything decided up front."""

    id: str
    language: str
    split: str
    meaning: str
    surface: str
    rules: tuple[str, ...]
    divergence: int
    voice: engines.Voice
    rate: float
    pitch: float
    snr_db: float | None  # None = no added noise
    noise_seed: int
    speed: float  # resampling speed perturbation, 1 = none
    audio: str


@dataclass
class LanguageReport:
    language: str
    utterances: Counter = field(default_factory=Counter)  # split -> kept
    voices: dict[str, list[str]] = field(default_factory=dict)  # split -> voice ids
    failed: list[Skipped] = field(default_factory=list)
    skipped_existing: bool = False


def bin_counts(n: int, shares: list[float]) -> list[int]:
    """Integer counts per ED bin summing to ``n``, closest to ``n * shares``
    (largest-remainder method)."""
    raw = [n * s for s in shares]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def split_voices(
    language: str, cfg: SynthConfig, allow_fewer_voices: bool
) -> dict[str, list[engines.Voice]]:
    """Voices per split: configured held-out voices for dev/test, every other
    installed voice for train. Missing engines are an error naming the Debian
    packages, unless ``allow_fewer_voices``."""
    voices = engines.all_voices(language)
    missing = engines.missing_packages(voices)
    if missing and not allow_fewer_voices:
        packages = sorted(set(missing.values()))
        raise SynthError(
            f"{language}: {len(missing)} voice(s) need packages that are not installed: "
            f"{' '.join(packages)}. Install them (`make setup` does, through apt) or pass "
            f"--allow-fewer-voices to build from the installed voices only."
        )
    installed = {v.id: v for v in voices if v.id not in missing}
    by_id = {v.id: v for v in voices}
    heldout = cfg.heldout_voices.get(language, {})
    out: dict[str, list[engines.Voice]] = {}
    heldout_speakers: set[str] = set()
    for split in ("dev", "test"):
        ids = heldout.get(split, [])
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise SynthError(
                f"synth.heldout_voices.{language}.{split}: unknown voice id(s) {unknown}; "
                f"see `dualasr synth --list-voices`"
            )
        out[split] = [installed[i] for i in ids if i in installed]
        heldout_speakers.update(by_id[i].speaker for i in ids)
    # Hold out speakers, not just voice ids: some engines share a recorded
    # speaker (CMU slt is a flite, a festival and an RHVoice voice; espeak-ng's
    # m3 is the same variant in every accent), and none of them may train.
    out["train"] = [v for v in installed.values() if v.speaker not in heldout_speakers]
    for split in SPLITS:
        if not out[split]:
            raise SynthError(
                f"{language}: no installed voice left for the {split} split "
                f"(held out: {heldout}); install the synthesizers or change synth.heldout_voices"
            )
    return out


#: Order in which the splits' own sentences are sliced from one generated pool
#: (test first: the splits of a corpus without a pool slice as they always did).
_SLICE_ORDER = ("test", "test_unseen", "dev", "train")


def voice_split(split: str) -> str:
    """The split whose voices read ``split``: every test split reads the held-out test voices."""
    return "test" if split.startswith("test") else split


def pick_distinct(
    sentences: list[str], targets: list[int], module, rng: random.Random, where: str
) -> list[tuple[str, object]]:
    """One reading per sentence: ``targets[b]`` sentences of ``sentences`` with a
    surface in ED bin ``b`` each, hardest bins first (the >10 bin tries the
    longest sentences first); a sentence that cannot reach a bin is left for the others."""
    unused = list(sentences)
    chosen: list[tuple[str, object]] = []
    for (label, lo, hi), n in reversed(list(zip(ED_BINS, targets, strict=True))):
        if hi is None:
            unused.sort(key=len, reverse=True)
        got, i = 0, 0
        while got < n and i < len(unused):
            result = sample_surface(unused[i], module.RULES, lo, hi, rng)
            if result is None:
                i += 1
                continue
            chosen.append((unused.pop(i), result))
            got += 1
        if got < n:
            raise SynthError(_short_bin(where, got, n, label, lo, hi))
    return chosen


def pick_readings(
    prompts: list[str], targets: list[int], module, rng: random.Random, where: str
) -> list[tuple[str, object]]:
    """Readings of a prompt pool: ``targets[b]`` readings with a surface in ED
    bin ``b`` each, every one with its own draw of L2 errors (as two learners
    reading one prompt). The least-read prompt goes next (ties in a random
    order; the >10 bin longest first), so readings spread evenly and every
    prompt is read once before any twice; a prompt that cannot reach a bin is
    not tried again for it."""
    reads = [0] * len(prompts)
    order = list(range(len(prompts)))
    rng.shuffle(order)
    rank = {i: r for r, i in enumerate(order)}
    chosen: list[tuple[str, object]] = []
    for (label, lo, hi), n in reversed(list(zip(ED_BINS, targets, strict=True))):
        def key(i: int, longest: bool = hi is None) -> tuple[int, int, int]:
            return reads[i], -len(prompts[i]) if longest else 0, rank[i]

        heap = [(key(i), i) for i in range(len(prompts))]
        heapq.heapify(heap)
        got = 0
        while got < n and heap:
            _, i = heapq.heappop(heap)
            result = sample_surface(prompts[i], module.RULES, lo, hi, rng)
            if result is None:
                continue
            chosen.append((prompts[i], result))
            reads[i] += 1
            got += 1
            heapq.heappush(heap, (key(i), i))
        if got < n:
            raise SynthError(_short_bin(where, got, n, label, lo, hi))
    return chosen


def _short_bin(where: str, got: int, n: int, label: str, lo: int, hi: int | None) -> str:
    language = where.split("/")[0]
    return (
        f"{where}: only {got} of {n} sentences reached ED bin {label}; "
        f"lower synth.ed_shares.{language}[{ED_BINS.index((label, lo, hi))}] or the sentence count"
    )


def plan_language(
    language: str, cfg: SynthConfig, seed: int, out_dir: Path, voices: dict[str, list[engines.Voice]]
) -> list[Job]:
    """Decide every utterance of ``language``: text, surface, voice, prosody, noise.

    Without a prompt pool every split reads sentences of its own, once each.
    With ``synth.prompts`` the training split reads ``prompts`` sentences
    (:func:`pick_readings`), ``test_seen`` (and dev when ``dev_regime`` is
    seen) re-reads them, and ``test_unseen`` (and dev otherwise) reads
    sentences of its own."""
    module = LANGUAGE_MODULES[language]
    rng = random.Random(f"{seed}:{language}:text")
    counts = cfg.sentence_counts(language)
    n_prompts = cfg.prompt_count(language)
    rereads = set() if n_prompts is None else {"test_seen"} | ({"dev"} if cfg.dev_regime == "seen" else set())
    own = {s: n for s, n in counts.items() if s not in rereads}
    if n_prompts is not None:
        own["train"] = n_prompts
    # Half again as many sentences as needed: a sentence that cannot reach its
    # drawn ED bin (too short for >10, say) is set aside and another is tried.
    # A pool's prompts are exactly the first ``prompts`` of its slice.
    pool_sizes = {s: n + n // 2 + 20 for s, n in own.items()}
    pool = module.generate_sentences(sum(pool_sizes.values()), rng)
    pools, start = {}, 0
    for s in sorted(own, key=_SLICE_ORDER.index):  # disjoint slices of one distinct pool
        pools[s] = pool[start : start + pool_sizes[s]]
        start += pool_sizes[s]
    prompts = None if n_prompts is None else pools["train"][:n_prompts]

    jobs: list[Job] = []
    for split in counts:
        targets = bin_counts(counts[split], cfg.ed_shares[language])
        where = f"{language}/{split}"
        if prompts is not None and (split == "train" or split in rereads):
            chosen = pick_readings(prompts, targets, module, rng, where)
            if split == "train" and (unread := len(prompts) - len({m for m, _ in chosen})):
                raise SynthError(
                    f"{where}: {unread} of {len(prompts)} prompts reach none of the ED bins they were "
                    f"tried for; lower synth.prompts.{language} or raise sentences.train"
                )
        else:
            chosen = pick_distinct(pools[split], targets, module, rng, where)
        rng.shuffle(chosen)
        prng = random.Random(f"{seed}:{language}:{split}:prosody")
        # Its own stream: with speed perturbation off, every other draw is as before it existed.
        srng = random.Random(f"{seed}:{language}:{split}:speed")
        # Engines take equal turns, then voices within an engine: espeak-ng's
        # many variants must not drown the engines that have one or two voices.
        # An engine's foreign-accented voices take their own turn, so they add
        # speakers without taking the native voices' share.
        by_engine: dict[tuple[str, bool], list[engines.Voice]] = {}
        for v in voices[voice_split(split)]:
            by_engine.setdefault((v.engine, bool(v.accent)), []).append(v)
        groups = [by_engine[e] for e in sorted(by_engine)]
        for k, (meaning, result) in enumerate(chosen):
            uid = f"{language}_{split}_{k:06d}"
            noisy = prng.random() < cfg.noise_prob
            snr = prng.uniform(*cfg.snr_db)
            rate, pitch = prng.uniform(*cfg.rate), prng.uniform(*cfg.pitch)
            voice = (g := groups[k % len(groups)])[(k // len(groups)) % len(g)]
            jobs.append(
                Job(
                    id=uid,
                    language=language,
                    split=split,
                    meaning=meaning,
                    surface=result.surface,
                    rules=result.rules,
                    divergence=result.divergence,
                    voice=voice,
                    rate=round(rate, 3),
                    # Voices without pitch control record the pitch they speak at.
                    pitch=round(pitch, 3) if "pitch" in voice.controls else 1.0,
                    snr_db=round(snr, 1) if noisy else None,
                    noise_seed=prng.getrandbits(32),
                    speed=round(srng.uniform(*cfg.speed), 3),
                    audio=str(out_dir / language / "audio" / split / f"{uid}.flac"),
                )
            )
    return jobs


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white or pink (1/f power, shaped in the frequency domain) noise at ``snr_db``."""
    noise = rng.standard_normal(len(audio))
    if rng.random() < 0.5:
        spec = np.fft.rfft(noise)
        spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
        noise = np.fft.irfft(spec, n=len(audio))
    p_signal = float(np.mean(audio**2)) or 1e-10
    p_noise = float(np.mean(noise**2)) or 1e-10
    noise *= np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))
    out = audio + noise
    peak = float(np.max(np.abs(out)))
    return (out / peak * 0.95 if peak > 0.99 else out).astype(np.float32)


def perturb_speed(audio: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """Play ``audio`` ``factor`` times faster: duration / factor, every frequency
    x factor (Kaldi's speed perturbation). Resampling with soxr, already used for
    the engines' output; Lhotse's ``perturb_speed`` would need torchaudio."""
    if factor == 1.0:
        return audio
    return soxr.resample(audio, sample_rate * factor, sample_rate).astype(np.float32, copy=False)


def synthesize_job(job: Job, sample_rate: int, tmp_dir: str | None = None) -> tuple[str, str | None]:
    """Synthesize one job's surface form to its FLAC file; returns (id, error or None).
    ``tmp_dir``: where the engine's temporary directory goes."""
    path = Path(job.audio)
    if path.exists():
        return job.id, None
    try:
        audio = engines.synthesize(job.voice, job.surface, rate=job.rate, pitch=job.pitch, sample_rate=sample_rate,
                                   tmp_dir=tmp_dir)  # fmt: skip
    except engines.SynthesisError as e:
        return job.id, str(e).replace("\n", " ")[:500]
    audio = perturb_speed(audio, job.speed, sample_rate)
    if job.snr_db is not None:
        audio = add_noise(audio, job.snr_db, np.random.default_rng(job.noise_seed))
    with atomic_path(path, suffix=".flac") as tmp:  # a killed build leaves no truncated file
        sf.write(tmp, audio, sample_rate, subtype="PCM_16")
    return job.id, None


def _worker(args: tuple[Job, int, str | None]) -> tuple[str, str | None]:
    return synthesize_job(*args)


def _fingerprint(cfg: SynthConfig, seed: int, language: str) -> str:
    """Hash of what decides the corpus: the seed and every synth option except
    ``workers`` (the corpus is identical whatever the number of workers)."""
    # Without a prompt pool its keys leave the hash, so a corpus built before
    # they existed is still recognised as the same corpus.
    exclude = {"workers"} | ({"prompts", "dev_regime"} if cfg.prompts is None else set())
    fields = cfg.model_dump(exclude=exclude)
    blob = json.dumps({"seed": seed, "language": language, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_language(
    language: str,
    config: Config,
    out_dir: Path,
    allow_fewer_voices: bool = False,
    progress: bool = True,
) -> LanguageReport:
    cfg = config.synth
    report = LanguageReport(language)
    lang_dir = out_dir / language
    manifests = [lang_dir / f"cuts_{s}.jsonl.gz" for s in cfg.splits()]
    stamp = lang_dir / "synth.json"
    fingerprint = _fingerprint(cfg, config.seed, language)
    if stamp.exists():
        done = json.loads(stamp.read_text())
        if done.get("fingerprint") != fingerprint:
            raise SynthError(
                f"{lang_dir}: holds a corpus built from another config or seed; "
                f"use a new --out directory or delete this one"
            )
    if all(p.exists() for p in manifests):
        report.skipped_existing = True
        return report
    voices = split_voices(language, cfg, allow_fewer_voices)
    report.voices = {s: [v.id for v in vs] for s, vs in voices.items()}
    lang_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, json.dumps({"fingerprint": fingerprint, "voices": report.voices}, indent=1), overwrite=True)

    jobs = plan_language(language, cfg, config.seed, out_dir, voices)
    workers = cfg.workers or os.cpu_count() or 1
    errors: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc=f"synth {language}", unit="utt", disable=not progress)
    if workers == 1:
        results = map(_worker, [(j, cfg.sample_rate, None) for j in jobs])
        for uid, err in results:
            if err:
                errors[uid] = err
            bar.update()
    else:
        # A stopped pool (Ctrl-C, an error here) kills its workers with SIGTERM,
        # which skips their cleanup: their temporary directories go in one
        # directory that this process removes once the workers are gone.
        with (
            tempfile.TemporaryDirectory(prefix="dualasr-synth-", ignore_cleanup_errors=True) as scratch,
            mp.get_context("spawn").Pool(workers) as pool,
        ):
            args = [(j, cfg.sample_rate, scratch) for j in jobs]
            for uid, err in pool.imap_unordered(_worker, args, chunksize=4):
                if err:
                    errors[uid] = err
                bar.update()
    bar.close()

    report.failed = [Skipped(j.id, f"{j.voice.id}", errors[j.id]) for j in jobs if j.id in errors]
    if report.failed:
        write_skipped(report.failed, lang_dir / "synth_failed.tsv")
    if len(report.failed) > MAX_FAILED_SHARE * len(jobs):
        raise SynthError(
            f"{language}: synthesis failed for {len(report.failed)} of {len(jobs)} utterances "
            f"(see {lang_dir / 'synth_failed.tsv'}); first: {report.failed[0].reason}"
        )

    by_split: dict[str, list[tuple[str, Utterance]]] = {s: [] for s in cfg.splits()}
    for j in jobs:
        if j.id in errors:
            continue
        utt = Utterance(
            id=j.id,
            audio=j.audio,
            language=language,
            speaker=j.voice.id,
            surface=j.surface,
            meaning=j.meaning,
            l1=LEARNER_L1[language],
            custom={
                "divergence": j.divergence,
                "rules": list(j.rules),
                "engine": j.voice.engine,
                "accent": j.voice.accent or None,
                "rate": j.rate,
                "pitch": j.pitch,
                "snr_db": j.snr_db,
                "speed": j.speed,
            },
        )
        by_split[j.split].append((f"synth:{j.id}", utt))
    # Build every split before writing any, so a failure leaves no partial corpus.
    cutsets = {s: cuts_from_utterances(items) for s, items in by_split.items()}
    for split, cuts in cutsets.items():
        write_manifest(cuts, lang_dir / f"cuts_{split}.jsonl.gz", overwrite=True)
        report.utterances[split] = len(cuts)
    return report


def build_corpus(
    config: Config,
    out_dir: str | Path,
    allow_fewer_voices: bool = False,
    progress: bool = True,
) -> list[LanguageReport]:
    """Build the synthetic corpus of every configured language under ``out_dir``.
    Manifests hold absolute audio paths, so they work from any directory."""
    out_dir = Path(out_dir).resolve()
    for lang in config.synth.languages:
        if lang not in config.synth.ed_shares:
            raise ManifestError(f"synth.ed_shares has no entry for language {lang!r}")
    return [
        build_language(lang, config, out_dir, allow_fewer_voices, progress) for lang in config.synth.languages
    ]


def describe(report: LanguageReport) -> str:
    if report.skipped_existing:
        return f"{report.language}: corpus already built, skipped"
    counts = ", ".join(f"{s} {n}" for s, n in report.utterances.items())
    voices = "; ".join(f"{s}: {len(v)} voices" for s, v in report.voices.items())
    failed = f"; {len(report.failed)} failed synthesis (listed in synth_failed.tsv)" if report.failed else ""
    return f"{report.language}: {counts} utterances ({voices}){failed}"

