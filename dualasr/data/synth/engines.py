"""One interface over every speech synthesizer the synthetic L2 corpus uses.

All engines are Debian packages driven through their command-line tools; a
:class:`Voice` names one speaker of one engine, :func:`synthesize` turns a
normalised transcription (English: lowercase letters, apostrophes, spaces;
Korean: Hangul and spaces) into float32 mono audio at the requested sample rate.

Controls: ``rate`` > 1 is faster (duration ~ 1/rate), ``pitch`` multiplies the
voice's median F0. Both are mapped onto each engine's native parameters and
were checked by measuring duration and median F0 at 0.5x..2x:

==========  ====================================  ==================================
engine      rate                                  pitch
==========  ====================================  ==================================
espeak-ng   ``-s 175*rate**0.87`` (words/min)     ``-p 50+72.5*log2(pitch)``, 0..99
mbrola      as espeak-ng (espeak drives it)       as espeak-ng
flite       ``duration_stretch = default/rate``   ``f0_shift = pitch`` (not rms)
festival    ``Duration_Stretch = default/rate``;  ``int_lr_params`` target F0 mean
            HTS voice: hts_engine ``-r rate``     and std x pitch (not HTS)
pico        ``<speed level=100*rate>`` markup     ``<pitch level=100*pitch>`` markup
rhvoice     ``-r 100*rate``                       ``-t 100*pitch``
==========  ====================================  ==================================

espeak-ng's ``-p`` scales only the base of its F0 contour, so the gain 72.5 (not
50) is needed for the median to follow ``pitch``, and saturates at 0.62..1.6.
flite's rms voice (SPAM F0 model) and festival's HTS voice ignore every F0
parameter: their ``Voice.controls`` lack ``"pitch"`` and ``pitch`` is ignored.

Korean MBROLA: espeak-ng ships ``mbrola_ph/hn1_phtrans`` but no ``voices/mb/mb-hn1``
voice file, so :func:`synthesize` builds, once per machine, an overlay of the
espeak-ng data directory that adds it (see :func:`_espeak_overlay`).
"""

from __future__ import annotations

import functools
import math
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
import soxr

from dualasr.errors import DualasrError

#: MBROLA databases of other languages that espeak-ng drives with English text
#: (its ``mb-<db>-en`` voices: English phonemes mapped onto the database's own),
#: i.e. English with that speaker's L1 accent -> (L1, gender as spoken).
#: Left out: sw2 (a missing English diphone in most sentences: 76 gaps in 60
#: sentences, against 0-28 for these).
_MBROLA_ACCENTED = {
    "af1": ("af", "male"),
    "de1": ("de", "female"),
    "de2": ("de", "male"),
    "de3": ("de", "female"),
    "de4": ("de", "male"),
    "de5": ("de", "female"),
    "de6": ("de", "male"),
    "fr1": ("fr", "male"),
    "fr4": ("fr", "female"),
    "gr2": ("el", "male"),
    # Debian calls hu1 a male voice; espeak-ng's mb-hu1-en speaks it at a female pitch
    "hu1": ("hu", "female"),
    "nl2": ("nl", "male"),
    "pl1": ("pl", "female"),
    "ro1": ("ro", "male"),
    "sw1": ("sv", "male"),
}

#: engine -> Debian packages that provide it and all its registered voices.
ENGINE_PACKAGES: dict[str, list[str]] = {
    "espeak-ng": ["espeak-ng"],
    "mbrola": [
        "espeak-ng",
        "mbrola",
        "mbrola-us1",
        "mbrola-us2",
        "mbrola-us3",
        "mbrola-en1",
        "mbrola-hn1",
        *(f"mbrola-{db}" for db in _MBROLA_ACCENTED),
    ],
    "flite": ["flite"],
    "festival": [
        "festival",
        "festvox-kallpc16k",
        "festvox-kdlpc16k",
        "festvox-rablpc16k",
        "festvox-don",
        "festvox-us-slt-hts",
    ],
    "pico": ["libttspico-utils"],
    "rhvoice": ["rhvoice", "rhvoice-english"],
}

# engine -> (binary, Debian package providing it)
_BINARIES: dict[str, list[tuple[str, str]]] = {
    "espeak-ng": [("espeak-ng", "espeak-ng")],
    "mbrola": [("espeak-ng", "espeak-ng"), ("mbrola", "mbrola")],
    "flite": [("flite", "flite")],
    "festival": [("text2wave", "festival"), ("festival", "festival")],
    "pico": [("pico2wave", "libttspico-utils")],
    "rhvoice": [("RHVoice-test", "rhvoice")],
}

_TIMEOUT_S = 120.0
# espeak-ng's -p scales only the base of the F0 contour (factor 2**((p-50)/50)),
# not its range, so the median F0 moves by ~0.69 of that in log scale (measured
# on en-us+m3, en-gb+f2, ko+f1, mb-us1, mb-en1, mb-hn1); this gain makes the
# median F0 follow ``pitch``. -p saturates at 0 and 99: pitch 0.62 .. 1.6.
_ESPEAK_PITCH_GAIN = 1.45
# espeak-ng's words-per-minute setting shortens speech a little more than in
# proportion (duration ~ wpm**-1.15, measured at 0.5x..2x); this exponent makes
# duration follow 1/rate.
_ESPEAK_RATE_EXPONENT = 0.87
_RATE_RANGE = (0.5, 2.0)
_PITCH_RANGE = (0.5, 2.0)


class SynthesisError(DualasrError, RuntimeError):
    """An engine failed or produced no audible output."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker.

    ``name`` is the engine's own voice name (espeak-ng language, MBROLA database,
    flite/festival/RHVoice voice, pico language) and ``variant`` the espeak-ng
    voice variant (``m1``..``m7``, ``f1``..``f4``; empty for other engines).
    ``speaker`` names the recorded person (or, for espeak-ng, the variant's
    timbre) behind the voice: voices of different engines built from the same
    recordings (CMU ARCTIC slt in flite, festival and RHVoice, for example)
    share it, so hold-out splits should be made by speaker, not by id.
    ``package`` is the Debian package holding the voice data. ``accent`` is the
    L1 (ISO 639-1) of a voice that speaks the language with a foreign accent
    (an MBROLA database of another language), empty for native voices.
    """

    id: str
    engine: str
    language: str
    name: str
    speaker: str
    gender: str
    package: str
    variant: str = ""
    controls: frozenset[str] = frozenset({"rate", "pitch"})
    accent: str = ""


# --- the registry -----------------------------------------------------------

_ESPEAK_EN_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
_ESPEAK_VARIANTS = tuple(f"m{i}" for i in range(1, 8)) + tuple(f"f{i}" for i in range(1, 5))

# flite's kal voice sets duration_stretch 1.1 itself; the others leave it at 1.0.
# awb_time (limited domain: says times of day only) and the 8 kHz kal are left out.
_FLITE_STRETCH = {"kal16": 1.1}


def _espeak_voices(accents: Iterable[str], language: str) -> list[Voice]:
    return [
        Voice(
            id=f"espeak-{accent}-{variant}",
            engine="espeak-ng",
            language=language,
            name=accent,
            variant=variant,
            speaker=f"espeak-{variant}",
            gender="female" if variant.startswith("f") else "male",
            package="espeak-ng-data",
        )
        for accent in accents
        for variant in _ESPEAK_VARIANTS
    ]


_RATE_ONLY = frozenset({"rate"})

# Voice(id, engine, language, name, speaker, gender, package, ...)
_REGISTRY: dict[str, list[Voice]] = {
    "en": _espeak_voices(_ESPEAK_EN_ACCENTS, "en")
    + [
        Voice("mbrola-us1", "mbrola", "en", "us1", "mbrola-us1", "female", "mbrola-us1"),
        Voice("mbrola-us2", "mbrola", "en", "us2", "mbrola-us2", "male", "mbrola-us2"),
        Voice("mbrola-us3", "mbrola", "en", "us3", "mbrola-us3", "male", "mbrola-us3"),
        Voice("mbrola-en1", "mbrola", "en", "en1", "mbrola-en1", "male", "mbrola-en1"),
        *(
            Voice(
                f"mbrola-{db}-en",
                "mbrola",
                "en",
                f"{db}-en",
                f"mbrola-{db}",
                gender,
                f"mbrola-{db}",
                accent=l1,
            )
            for db, (l1, gender) in _MBROLA_ACCENTED.items()
        ),
        Voice("flite-kal", "flite", "en", "kal16", "cmu-kal", "male", "flite"),
        Voice("flite-awb", "flite", "en", "awb", "cmu-awb", "male", "flite"),
        # rms takes F0 from its SPAM model, which ignores flite's F0 features
        Voice("flite-rms", "flite", "en", "rms", "cmu-rms", "male", "flite", controls=_RATE_ONLY),
        Voice("flite-slt", "flite", "en", "slt", "cmu-slt", "female", "flite"),
        Voice(
            "festival-kal", "festival", "en", "kal_diphone", "cmu-kal", "male", "festvox-kallpc16k"
        ),
        Voice(
            "festival-rab", "festival", "en", "rab_diphone", "cstr-rab", "male", "festvox-rablpc16k"
        ),
        # American male (CMU) and British RP male (Donovan; a 10 kHz diphone set)
        Voice(
            "festival-ked", "festival", "en", "ked_diphone", "cmu-ked", "male", "festvox-kdlpc16k"
        ),
        Voice("festival-don", "festival", "en", "don_diphone", "cstr-don", "male", "festvox-don"),
        Voice(
            "festival-slt-hts",
            "festival",
            "en",
            "cmu_us_slt_arctic_hts",
            "cmu-slt",
            "female",
            "festvox-us-slt-hts",
            controls=_RATE_ONLY,
        ),
        Voice("pico-en-US", "pico", "en", "en-US", "pico-en-US", "female", "libttspico-data"),
        Voice("pico-en-GB", "pico", "en", "en-GB", "pico-en-GB", "female", "libttspico-data"),
        # alan, bdl, clb and slt are built from the CMU ARCTIC recordings
        Voice("rhvoice-alan", "rhvoice", "en", "alan", "cmu-awb", "male", "rhvoice-english"),
        Voice("rhvoice-bdl", "rhvoice", "en", "bdl", "cmu-bdl", "male", "rhvoice-english"),
        Voice("rhvoice-clb", "rhvoice", "en", "clb", "cmu-clb", "female", "rhvoice-english"),
        Voice("rhvoice-slt", "rhvoice", "en", "slt", "cmu-slt", "female", "rhvoice-english"),
        Voice(
            "rhvoice-evgeniy-eng",
            "rhvoice",
            "en",
            "evgeniy-eng",
            "rhvoice-evgeniy",
            "male",
            "rhvoice-english",
        ),
        Voice(
            "rhvoice-lyubov",
            "rhvoice",
            "en",
            "lyubov",
            "rhvoice-lyubov",
            "female",
            "rhvoice-english",
        ),
    ],
    "ko": _espeak_voices(["ko"], "ko")
    + [
        Voice("mbrola-hn1", "mbrola", "ko", "hn1", "mbrola-hn1", "male", "mbrola-hn1"),
    ],
}


def all_voices(language: str) -> list[Voice]:
    """Every voice the registry knows for ``language`` (``"en"`` or ``"ko"``),
    installed or not; see :func:`missing_packages` for which ones can run."""
    if language not in _REGISTRY:
        raise ValueError(f"no voices for language {language!r}; known: {sorted(_REGISTRY)}")
    return list(_REGISTRY[language])


# --- installation checks ----------------------------------------------------

_MBROLA_DIRS = (Path("/usr/share/mbrola"), Path("/usr/local/share/mbrola"))
_FESTIVAL_VOICE_DIRS = (
    Path("/usr/share/festival/voices"),
    Path("/usr/lib/festival/voices"),
    Path("/usr/local/share/festival/voices"),
)
_PICO_LANG_DIRS = (Path("/usr/share/pico/lang"), Path("/usr/lib/pico/lang"))
_RHVOICE_VOICE_DIRS = (Path("/usr/share/RHVoice/voices"), Path("/usr/local/share/RHVoice/voices"))
_ESPEAK_DATA_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data"),
    Path("/usr/lib/aarch64-linux-gnu/espeak-ng-data"),
    Path("/usr/share/espeak-ng-data"),
    Path("/usr/local/share/espeak-ng-data"),
)


@functools.lru_cache(maxsize=4)
def _espeak_data_dir(binary: str | None) -> Path | None:
    """The espeak-ng data directory, as printed by ``espeak-ng --version``
    ("... Data at: DIR"), else the first known location that exists."""
    try:
        if binary is None:
            raise FileNotFoundError("espeak-ng")
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10
        ).stdout
        m = re.search(r"Data at:\s*(\S.*?)\s*$", out, re.M)
        if m and (Path(m.group(1)) / "phontab").is_file():
            return Path(m.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    return next((d for d in _ESPEAK_DATA_DIRS if (d / "phontab").is_file()), None)


@functools.lru_cache(maxsize=4)
def _flite_voices(binary: str) -> frozenset[str]:
    try:
        out = subprocess.run([binary, "-lv"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(out.split(":", 1)[-1].split())


# MBROLA database -> espeak-ng phoneme translation table (as named in
# voices/mb/mb-*), where it is not <database>_phtrans
_MBROLA_PHTRANS = {
    "us1": "us_phtrans",
    "us2": "us_phtrans",
    "de1": "de2_phtrans",
    "de3": "de2_phtrans",
    "de5": "de6_phtrans",
    "fr1": "fr_phtrans",
    "fr4": "fr_phtrans",
    "nl2": "nl_phtrans",
    "sw1": "sv_phtrans",
}


def _mbrola_database(voice: Voice) -> tuple[str, Path | None]:
    """The MBROLA database name and file of an MBROLA voice (voice name ``us1``,
    or ``de4-en``: the database de4 speaking English); the file is None if the
    database is not installed."""
    name = voice.name.split("-")[0]
    paths = (p for d in _MBROLA_DIRS for p in (d / name / name, d / name, d / "voices" / name))
    return name, next((p for p in paths if p.is_file()), None)


def _voice_data_present(voice: Voice, binaries: dict[str, str | None]) -> bool:
    """Whether the voice's data files are installed (``binaries``: name -> path or
    None). flite's voices are compiled into the flite package: without the binary
    they count as present, and the missing binary names the package."""
    n = voice.name
    if voice.engine in ("espeak-ng", "mbrola"):
        data = _espeak_data_dir(binaries["espeak-ng"])
        if data is None:
            return False
        if voice.engine == "mbrola":
            db, path = _mbrola_database(voice)
            return (
                path is not None
                and (data / "mbrola_ph" / _MBROLA_PHTRANS.get(db, f"{db}_phtrans")).is_file()
            )
        return True
    if voice.engine == "flite":
        return binaries["flite"] is None or n in _flite_voices(binaries["flite"])
    if voice.engine == "festival":
        return any(
            (d / lang / n).is_dir() for d in _FESTIVAL_VOICE_DIRS for lang in ("english", "us")
        )
    if voice.engine == "pico":
        return any((d / f"{n}_ta.bin").is_file() for d in _PICO_LANG_DIRS)
    if voice.engine == "rhvoice":
        return any((d / n / "voice.info").is_file() for d in _RHVOICE_VOICE_DIRS)
    raise ValueError(f"unknown engine {voice.engine!r} for voice {voice.id}")


def missing_packages(voices: Iterable[Voice]) -> dict[str, str]:
    """Voice id -> Debian package(s) to install for it, for voices that cannot run.

    Checks the engine's binaries on ``PATH`` and the voice's data files; runs no
    synthesis. Several packages are space-separated (ready for ``apt-get install``).
    """
    missing: dict[str, str] = {}
    for voice in voices:
        if voice.engine not in _BINARIES:
            raise ValueError(f"unknown engine {voice.engine!r} for voice {voice.id}")
        found = {b: shutil.which(b) for b, _ in _BINARIES[voice.engine]}
        pkgs = [pkg for b, pkg in _BINARIES[voice.engine] if found[b] is None]
        if not _voice_data_present(voice, found):
            pkgs.append(voice.package)
        if pkgs:
            missing[voice.id] = " ".join(dict.fromkeys(pkgs))
    return missing


# --- espeak-ng data overlay for Korean MBROLA hn1 ---------------------------

_MB_HN1 = "name korean-mbrola-hn1\nlanguage ko\ngender male\n\nmbrola hn1 hn1_phtrans\n"


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dualasr"


@functools.lru_cache(maxsize=4)
def _espeak_overlay(data: Path) -> Path:
    """An espeak-ng data directory equal to ``data`` plus ``voices/mb/mb-hn1``.

    Every entry is a symlink into ``data`` except ``voices/`` and ``voices/mb/``,
    which are real directories of symlinks. Built once under the user's cache dir
    (keyed by its path and mtimes), in a private temporary directory renamed into
    place, so concurrent worker processes never see a half-built overlay.
    """
    # the key changes when the package adds or removes entries (directory mtimes)
    stamp = "-".join(
        str(p.stat().st_mtime_ns)
        for p in (data, data / "voices", data / "voices" / "mb")
        if p.is_dir()
    )
    key = re.sub(r"[^A-Za-z0-9]+", "_", f"{data.resolve()}-{stamp}").strip("_")
    try:
        root = _cache_root()
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        root = Path(tempfile.gettempdir()) / f"dualasr-{os.getuid()}"
        root.mkdir(parents=True, exist_ok=True)
    final = root / f"espeak-ng-data-{key}"
    if (final / "voices" / "mb" / "mb-hn1").is_file():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=".espeak-ng-data-", dir=root))
    tmp.chmod(0o755)
    try:
        for entry in data.iterdir():
            if entry.name != "voices":
                (tmp / entry.name).symlink_to(entry)
        (tmp / "voices" / "mb").mkdir(parents=True)
        for entry in (data / "voices").iterdir():
            if entry.name != "mb":
                (tmp / "voices" / entry.name).symlink_to(entry)
        if (data / "voices" / "mb").is_dir():
            for entry in (data / "voices" / "mb").iterdir():
                (tmp / "voices" / "mb" / entry.name).symlink_to(entry)
        hn1 = tmp / "voices" / "mb" / "mb-hn1"
        if not hn1.exists():
            hn1.write_text(_MB_HN1)
        os.rename(tmp, final)  # atomic; fails if another process got there first
    except OSError:
        if not (final / "voices" / "mb" / "mb-hn1").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# --- synthesis --------------------------------------------------------------


def _espeak_command(voice: Voice, rate: float, pitch: float) -> tuple[list[str], dict[str, str]]:
    name = f"mb-{voice.name}" if voice.engine == "mbrola" else f"{voice.name}+{voice.variant}"
    speed = round(175 * rate**_ESPEAK_RATE_EXPONENT)
    p = min(99, max(0, round(50 + _ESPEAK_PITCH_GAIN * 50 * math.log2(pitch))))
    env = dict(os.environ)
    amplitude = 100
    if voice.engine == "mbrola" and voice.language == "ko":
        amplitude = 60  # hn1 clips at espeak-ng's default amplitude 100
        data = _espeak_data_dir(shutil.which("espeak-ng") or "espeak-ng")
        if data is None:
            raise SynthesisError("espeak-ng data directory not found (install espeak-ng-data)")
        if not (data / "voices" / "mb" / "mb-hn1").is_file():
            env["ESPEAK_DATA_PATH"] = str(_espeak_overlay(data))
    # -b 1: input is UTF-8; text on stdin; punctuation is never spoken by default
    espeak = ["espeak-ng", "-v", name, "-s", str(speed), "-p", str(p), "-b", "1"]
    if voice.engine == "mbrola":
        # espeak-ng's in-process MBROLA pipe is not deterministic (hn1 gives a
        # different length run to run for the same text); writing the phoneme
        # file and running the mbrola binary on it is, so the corpus is
        # reproducible. -e: skip unknown diphones instead of stopping.
        _, db = _mbrola_database(voice)
        pipeline = (
            f"{shlex.join([*espeak, '-q', '--pho', '--stdin'])} | "
            f"mbrola -e -v {amplitude / 100} {shlex.quote(str(db))} - {{out}}"
        )
        return ["bash", "-o", "pipefail", "-c", pipeline], env
    return [*espeak, "-a", str(amplitude), "-w", "{out}", "--stdin"], env


def _festival_command(voice: Voice, rate: float, pitch: float) -> list[str]:
    evals = [f"(voice_{voice.name})"]
    if voice.name.endswith("_hts"):
        # durations come from the HTS model (Duration_Stretch is ignored); -r is
        # hts_engine's speed factor; no F0 parameter reaches festival's hts_engine
        evals.append(f'(set! hts_engine_params (append hts_engine_params \'(("-r" {rate!r}))))')
    else:
        # the voice sets its own Duration_Stretch and int_lr_params; scale them
        evals.append(
            f"(Parameter.set 'Duration_Stretch (/ (Parameter.get 'Duration_Stretch) {rate!r}))"
        )
        evals.append(
            "(set! int_lr_params (mapcar (lambda (p) (if (or (eq? (car p) 'target_f0_mean) "
            f"(eq? (car p) 'target_f0_std)) (list (car p) (* {pitch!r} (cadr p))) p)) int_lr_params))"
        )
    cmd = ["text2wave", "-o", "{out}"]
    for e in evals:
        cmd += ["-eval", e]
    return cmd + ["{text}"]


def _command(
    voice: Voice, text: str, rate: float, pitch: float
) -> tuple[list[str], dict[str, str] | None, str | None]:
    """(argv with ``{out}``/``{text}`` placeholders, env, stdin text)."""
    if voice.engine in ("espeak-ng", "mbrola"):
        cmd, env = _espeak_command(voice, rate, pitch)
        return cmd, env, text + "\n"
    if voice.engine == "flite":
        stretch = _FLITE_STRETCH.get(voice.name, 1.0) / rate
        return (
            [
                "flite",
                "-voice",
                voice.name,
                "--setf",
                f"duration_stretch={stretch:.4f}",
                "--setf",
                f"f0_shift={pitch:.4f}",
                "-f",
                "{text}",
                "-o",
                "{out}",
            ],
            None,
            None,
        )
    if voice.engine == "festival":
        return _festival_command(voice, rate, pitch), None, None
    if voice.engine == "pico":
        # pico2wave reads no stdin; its text argument accepts SVOX markup tags
        markup = (
            f"<speed level='{round(100 * rate)}'><pitch level='{round(100 * pitch)}'>"
            f"{escape(text)}</pitch></speed>"
        )
        return ["pico2wave", "-l", voice.name, "-w", "{out}", "--", markup], None, None
    if voice.engine == "rhvoice":
        return (
            [
                "RHVoice-test",
                "-p",
                voice.name,
                "-r",
                str(round(100 * rate)),
                "-t",
                str(round(100 * pitch)),
                "-o",
                "{out}",
            ],
            None,
            text + "\n",
        )
    raise ValueError(f"unknown engine {voice.engine!r} for voice {voice.id}")


def synthesize(
    voice: Voice, text: str, *, rate: float = 1.0, pitch: float = 1.0, sample_rate: int = 16000,
    tmp_dir: str | None = None,
) -> np.ndarray:  # fmt: skip
    """Speak ``text`` with ``voice``; return float32 mono samples in [-1, 1], shape
    ``(samples,)`` at ``sample_rate`` Hz (resampled with soxr).

    ``rate`` (speaking-rate factor, > 1 faster) and ``pitch`` (base-F0 factor)
    must lie in [0.5, 2]; controls missing from ``voice.controls`` are ignored.
    Raises :class:`SynthesisError` if the engine fails, times out, or returns
    silence. The engine writes into a temporary ``dualasr-synth-*`` directory
    under ``tmp_dir`` (default: the system's), removed on return or any exception.
    """
    for label, value, (lo, hi) in (("rate", rate, _RATE_RANGE), ("pitch", pitch, _PITCH_RANGE)):
        if not lo <= value <= hi:
            raise ValueError(f"{label}={value} outside [{lo}, {hi}]")
    # An apostrophe not inside a word ("goin'", "'cause") is read as a quotation
    # mark and makes espeak-ng and flite insert a phrase break; it changes no sound.
    text = " ".join(re.sub(r"(?<!\w)'+|'+(?!\w)", "", text).split())
    if not text:
        raise ValueError("nothing to speak in the text")
    cmd, env, stdin = _command(voice, text, rate, pitch)
    with tempfile.TemporaryDirectory(prefix="dualasr-synth-", dir=tmp_dir) as tmp:
        out, text_file = os.path.join(tmp, "out.wav"), os.path.join(tmp, "text.txt")
        if "{text}" in cmd:
            Path(text_file).write_text(text + "\n", encoding="utf-8")
        argv = [a.replace("{out}", out).replace("{text}", text_file) for a in cmd]
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                env=env,
                timeout=_TIMEOUT_S,
                cwd=tmp,
            )
        except FileNotFoundError as e:
            raise SynthesisError(
                _describe(
                    voice, argv, f"{e}; install: " + missing_packages([voice]).get(voice.id, "?")
                )
            ) from e
        except subprocess.TimeoutExpired as e:
            raise SynthesisError(
                _describe(voice, argv, f"timed out after {_TIMEOUT_S:.0f} s")
            ) from e
        if proc.returncode != 0 or not os.path.isfile(out) or os.path.getsize(out) <= 44:
            missing = missing_packages([voice]).get(voice.id)
            raise SynthesisError(
                _describe(
                    voice,
                    argv,
                    f"exit status {proc.returncode}, "
                    f"stderr: {proc.stderr[-800:].strip()!r}"
                    + (f"; install: {missing}" if missing else ""),
                )
            )
        audio, sr = sf.read(out, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != sample_rate:
        audio = soxr.resample(audio, sr, sample_rate).astype(np.float32, copy=False)
    if audio.size == 0 or float(np.max(np.abs(audio))) < 1e-3:
        raise SynthesisError(
            _describe(
                voice,
                argv,
                f"silent output ({audio.size} samples), stderr: {proc.stderr[-800:].strip()!r}",
            )
        )
    return np.clip(audio, -1.0, 1.0)


def _describe(voice: Voice, argv: list[str], what: str) -> str:
    return f"{voice.engine} voice {voice.id}: {what}; command: {shlex.join(argv)}"
