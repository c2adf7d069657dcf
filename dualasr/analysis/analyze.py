"""``dualasr analyze``: layer-wise CKA between the models of a study, and an
entanglement index per model (the reference study's Tables 3 and 4, and beyond).

Reads (``DIR`` = a study directory, :mod:`dualasr.study`)::

    DIR/corpora.json                          language -> corpus directory
    <corpus>/fbank/test.jsonl.gz              test cuts with features (computed if missing)
    DIR/exp/<lang>/<model>/seed<k>/model.pt   trained models (sso, mso, do, other dual-output names)

Writes::

    DIR/tables/cka_encoder.csv|md     encoder CKA, every layer pair (Table 3 layout in .md)
    DIR/tables/cka_decoder.csv|md     decoder CKA, every layer pair (Table 4 layout in .md)
    DIR/tables/entanglement.csv|md    entanglement index per language, seed and model
    DIR/figures/cka_encoder.png       layer-by-layer heatmaps per pair + matching-layer curves
    DIR/figures/cka_decoder.png       matching-layer curves of the decoder pairs
    DIR/analysis/<lang>/seed<k>.json  cache of one (language, seed): reused while the
                                      models, the test manifest and the options are unchanged

Method. Every model of one (language, seed) runs on the same batches of the test
set (:mod:`dualasr.analysis.capture`); linear CKA (Kornblith et al. 2019) is
accumulated exactly over the whole set with
:class:`~dualasr.analysis.cka.LinearCKAAccumulator` (float64 sufficient
statistics, no sub-sampling). ``cka`` is the debiased estimator (HSIC_1, Song et
al. 2012) by default, the biased one with ``debiased=False``; ``cka_biased`` always
holds the biased value. Layers are numbered from 0 = the first block's output, as
the reference study's 0-11 (encoder) and 0-7 (decoder).

* **Encoder, frame level**: the rows are the valid encoder frames (1/4 of the
  feature rate) of every test utterance, aligned across models (same audio, same
  subsampling). Pairs: SSO vs MSO, SSO vs DO, MSO vs DO. A DO model's encoder
  layers are its shared trunk followed by *the branch of the output being
  compared* when it has task-specific top blocks (``encoder.task_specific_layers``):
  its surface branch against SSO, its meaning branch against MSO, since that is
  the stack that feeds the output the single-output model also produces. With
  task-specific blocks the two branches are also compared with each other (pair
  SDO vs MDO at encoder level).
* **Decoder, utterance level**: each decoder is teacher-forced on its own
  reference (surface or meaning text), so the two tasks' token sequences differ
  in length; each utterance is the mean of its decoder states over its valid
  positions (``sos`` and the reference tokens). Pairs (SDO/MDO = the DO model's
  surface/meaning decoder): SSO vs MSO, MSO vs MDO, SSO vs SDO, and the
  cross-task MSO vs SDO and SSO vs MDO; plus SDO vs MDO, the entanglement curve.

Every model name other than ``sso`` and ``mso`` is a dual-output model and gets
its own pairs (``do_x`` gives DO_X, SDO_X, MDO_X).

Entanglement index
------------------
For a model with a surface and a meaning decoder::

    E(model) = CKA_u(S_L, M_L)

the debiased linear CKA, at utterance level over the test set, between the
states of the last decoder layer L of its surface decoder (S) and of its meaning
decoder (M). The reference point is the same quantity for the two single-output
models, ``E_SO = CKA_u(SSO_L, MSO_L)`` (same language, seed and test set), and the
**excess entanglement** is ``E(model) - E_SO``.

Why this number. The two outputs are two readings of one utterance, so even
independently trained models represent them alike to a degree fixed by the
tasks and the data: that is ``E_SO``. What multi-task learning adds on top is
the entanglement the reference study blames for the surface-output loss; a
method that disentangles the outputs should bring ``E`` down to ``E_SO`` (excess
0), one that entangles them more pushes the excess up. The last decoder layer is
the representation each output is read out from (only LayerNorm and a linear
layer follow), so it is where entanglement can hurt the output; the mean over
matching layers (``index_mean_layers``) and every layer's value (``layers``) are
written too. ``encoder_index`` is the frame-level CKA between the last encoder
layer feeding the surface output and the one feeding the meaning output: 1 by
construction for a fully shared encoder, ``CKA(SSO, MSO)`` at the last layer for
the SO pair.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dualasr.analysis.capture import capture_batches
from dualasr.analysis.cka import LinearCKAAccumulator
from dualasr.atomic import atomic_write_text, save_figure
from dualasr.data.manifest import ManifestError
from dualasr.score.errors import fmt_number, fmt_rate, markdown_table, mean_std, model_order

#: Bump when the cached numbers would change for the same inputs.
CACHE_VERSION = 1

CKA_COLUMNS = (
    "lang", "seed", "pair", "model_x", "output_x", "model_y", "output_y",
    "layer_x", "layer_y", "cka", "cka_biased", "estimator", "level", "n",
)  # fmt: skip
ENTANGLEMENT_COLUMNS = (
    "lang", "seed", "model", "pair", "index", "index_mean_layers", "so_reference",
    "excess", "encoder_index", "layers", "estimator", "n",
)  # fmt: skip

SINGLE = {"sso": "surface", "mso": "meaning"}
_TAG = {"surface": "S", "meaning": "M"}

# Cho & Kim (2026), linear CKA of the Conformer models (secondary sources,
# /work/shared/paper.md): encoder SSO vs MSO at layers 0/3/6/9/11 of 12, and
# decoder pairs at layers 0/3/7 of 8.
REFERENCE_ENCODER = {
    "ko": {0: 0.95, 3: 0.43, 6: 0.56, 9: 0.45, 11: 0.56},
    "en": {0: 0.91, 3: 0.89, 6: 0.75, 9: 0.66, 11: 0.40},
}
REFERENCE_ENCODER_LAYERS = 12
REFERENCE_DECODER = {
    ("ko", "SSO vs MSO"): {0: 0.82, 3: 0.52, 7: 0.53},
    ("en", "SSO vs MSO"): {0: 0.34, 3: 0.52, 7: 0.39},
    ("ko", "MSO vs MDO"): {0: 0.84, 3: 0.85, 7: 0.88},
    ("en", "MSO vs MDO"): {0: 0.43, 3: 0.59, 7: 0.24},
    ("en", "MSO vs SDO"): {7: 0.44},
    ("en", "SSO vs MDO"): {7: 0.17},
}
REFERENCE_DECODER_LAYERS = 8


# ------------------------------------------------------------------ pairs


@dataclass(frozen=True)
class Pair:
    """Two representations to compare: ``(model, output)`` on each side.

    kind "encoder": the encoder layers feeding ``output`` (frame level);
    kind "decoder": the layers of ``output``'s decoder (utterance level)."""

    name: str
    kind: str
    x: tuple[str, str]
    y: tuple[str, str]

    @property
    def level(self) -> str:
        return "frame" if self.kind == "encoder" else "utterance"


def label(model: str, output: str | None = None) -> str:
    """SSO, MSO; a dual-output model ``do`` is DO, its decoders SDO and MDO."""
    if model in SINGLE or output is None:
        return model.upper()
    return _TAG[output] + model.upper()


def plan_pairs(outputs: dict[str, tuple[str, ...]], branched: set[str] = frozenset()) -> list[Pair]:
    """The pairs computable from the models present: ``outputs`` maps a model name
    to its outputs; ``branched`` names the dual-output models with task-specific
    encoder blocks. Order: encoder pairs, then decoder pairs in Table 4's order."""
    duals = [m for m in model_order(outputs) if m not in SINGLE]
    have = set(outputs)
    enc: list[Pair] = []
    dec: list[Pair] = []
    s, m = ("sso", "surface"), ("mso", "meaning")
    if {"sso", "mso"} <= have:
        enc.append(Pair("SSO vs MSO", "encoder", s, m))
        dec.append(Pair("SSO vs MSO", "decoder", s, m))
    for d in duals:
        ds, dm = (d, "surface"), (d, "meaning")
        if "sso" in have:
            enc.append(Pair(f"SSO vs {label(d)}", "encoder", s, ds))
        if "mso" in have:
            enc.append(Pair(f"MSO vs {label(d)}", "encoder", m, dm))
        if d in branched:
            enc.append(Pair(f"{label(d, 'surface')} vs {label(d, 'meaning')}", "encoder", ds, dm))
    for d in duals:
        ds, dm = (d, "surface"), (d, "meaning")
        S, M = label(d, "surface"), label(d, "meaning")
        for ok, pair in (
            ("mso" in have, Pair(f"MSO vs {M}", "decoder", m, dm)),
            ("sso" in have, Pair(f"SSO vs {S}", "decoder", s, ds)),
            ("mso" in have, Pair(f"MSO vs {S}", "decoder", m, ds)),
            ("sso" in have, Pair(f"SSO vs {M}", "decoder", s, dm)),
            (True, Pair(f"{S} vs {M}", "decoder", ds, dm)),
        ):
            if ok:
                dec.append(pair)
    return enc + dec


# ------------------------------------------------------------------ one (language, seed)


@dataclass
class RunResult:
    """CKA rows (dicts with :data:`CKA_COLUMNS` keys, ``cka`` = debiased) of one
    (language, seed), the example counts and notes."""

    lang: str
    seed: int
    rows: list[dict]
    n_frames: int
    n_utterances: int
    notes: list[str] = field(default_factory=list)


def _fingerprint(paths: dict[str, Path], manifest: Path, options: dict) -> dict:
    def stamp(p: Path) -> list:
        st = p.stat()
        return [str(p.resolve()), st.st_size, st.st_mtime_ns]

    return {
        "version": CACHE_VERSION,
        "models": {name: stamp(p) for name, p in sorted(paths.items())},
        "manifest": stamp(manifest),
        "options": options,
    }


def analyze_run(
    lang: str,
    seed: int,
    paths: dict[str, Path],
    manifest: Path,
    batch_size: int = 16,
    max_utterances: int | None = None,
    device=None,
) -> RunResult:
    """CKA of every pair of :func:`plan_pairs` for the models ``paths`` (name ->
    model.pt) of one language and seed, over ``manifest`` (cuts with features)."""
    from dualasr.device import pick_device
    from dualasr.model.checkpoint import load_model

    device = device or pick_device()
    notes: list[str] = []
    loaded = {}
    for name, path in paths.items():
        model, tokenizers = load_model(path, device)
        want = (SINGLE[name],) if name in SINGLE else ("surface", "meaning")
        if tuple(model.outputs) != want:
            notes.append(
                f"{lang}/{name}/seed{seed}: outputs {model.outputs}, expected {want} for a model "
                f"named {name!r}; left out"
            )
            continue
        loaded[name] = (model, tokenizers)
    outputs = {name: m.outputs for name, (m, _) in loaded.items()}
    branched = {n for n, (m, _) in loaded.items() if n not in SINGLE and len(m.encoder.branches)}
    pairs = plan_pairs(outputs, branched)
    accs: dict[Pair, LinearCKAAccumulator] = {}
    n_frames = n_utts = 0
    if pairs:
        for batch in capture_batches(loaded, manifest, batch_size, max_utterances, device):
            st = batch.models
            n_utts += len(batch.ids)
            n_frames += int(next(iter(st.values())).frame_mask.sum())
            for p in pairs:
                (mx, ox), (my, oy) = p.x, p.y
                if p.kind == "encoder":
                    xs, ys = st[mx].encoder[ox], st[my].encoder[oy]
                    masks = {"mask": st[mx].frame_mask}
                else:
                    xs, ys = st[mx].decoder[ox], st[my].decoder[oy]
                    masks = {"mask": st[mx].token_mask[ox], "mask_y": st[my].token_mask[oy]}
                if p not in accs:
                    accs[p] = LinearCKAAccumulator(len(xs), len(ys), level=p.level)
                accs[p].update(xs, ys, **masks)
    rows = []
    for p in pairs:
        acc = accs[p]
        values = {}
        for debiased in (True, False):
            try:
                values[debiased] = acc.compute(debiased=debiased)
            except ValueError as e:
                est = "debiased" if debiased else "biased"
                notes.append(f"{lang} seed{seed} {p.kind} {p.name}: {est} CKA undefined ({e}); NaN")
                values[debiased] = np.full((acc.n_layers_x, acc.n_layers_y), math.nan)
        for a in range(acc.n_layers_x):
            for b in range(acc.n_layers_y):
                rows.append({
                    "lang": lang, "seed": seed, "pair": p.name, "kind": p.kind,
                    "model_x": p.x[0], "output_x": p.x[1], "model_y": p.y[0], "output_y": p.y[1],
                    "layer_x": a, "layer_y": b, "cka_debiased": float(values[True][a, b]),
                    "cka_biased": float(values[False][a, b]), "level": p.level,
                    "n": acc.n_examples,
                })  # fmt: skip
    return RunResult(lang, seed, rows, n_frames, n_utts, notes)


def _cached_run(cache: Path, fingerprint: dict, compute: Callable[[], RunResult], force: bool) -> tuple[RunResult, bool]:
    if cache.exists() and not force:
        try:
            data = json.loads(cache.read_text())
            if data.get("fingerprint") == fingerprint:
                return RunResult(**data["result"]), True
        except (ValueError, TypeError, KeyError):
            pass  # unreadable or stale cache: recompute
    result = compute()
    payload = {"fingerprint": fingerprint, "result": result.__dict__}
    atomic_write_text(cache, json.dumps(payload), overwrite=True)
    return result, False


# ------------------------------------------------------------------ the study


@dataclass
class AnalysisResult:
    """Every CKA row (all languages and seeds), the entanglement rows, the files
    written, the models that were expected but missing, and notes."""

    rows: list[dict]
    entanglement: list[dict]
    files: list[Path]
    missing: list[str]
    notes: list[str]


_SEED_DIR = re.compile(r"seed(\d+)$")


def discover_models(exp: Path, lang: str) -> dict[tuple[str, int], Path | None]:
    """(model, seed) -> ``model.pt`` (None when the run directory has none) under
    ``exp/<lang>/<model>/seed<k>/``."""
    from dualasr.model.checkpoint import MODEL_FILE

    found: dict[tuple[str, int], Path | None] = {}
    lang_dir = exp / lang
    if not lang_dir.is_dir():
        return found
    for model_dir in sorted(p for p in lang_dir.iterdir() if p.is_dir()):
        for run in sorted(p for p in model_dir.iterdir() if p.is_dir()):
            m = _SEED_DIR.match(run.name)
            if m:
                path = run / MODEL_FILE
                found[(model_dir.name, int(m.group(1)))] = path if path.is_file() else None
    return found


def analyze_study(
    study_dir: str | Path,
    debiased: bool = True,
    batch_size: int = 16,
    max_utterances: int | None = None,
    models: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    force: bool = False,
    device=None,
    echo: Callable[[str], None] = print,
) -> AnalysisResult:
    """The analyze stage over a study directory (layout in the module docstring).

    debiased: which estimator fills the ``cka`` column and the tables (both are
        computed; ``cka_biased`` is always written).
    batch_size: utterances per forward pass; max_utterances: analyse only the
        first N test cuts by id (default: all).
    models, seeds: the runs expected (default: every ``exp/<lang>/<model>/seed<k>``
        found, with SSO and MSO always expected); an expected run without
        ``model.pt`` is skipped and counted in :attr:`AnalysisResult.missing`.
    force: recompute even where the cache under ``DIR/analysis`` is current."""
    from dualasr.data.features import compute_features
    from dualasr.study import read_corpora

    out = Path(study_dir)
    corpora = read_corpora(out)
    options = {"batch_size": batch_size, "max_utterances": max_utterances}
    rows: list[dict] = []
    notes: list[str] = []
    missing: list[str] = []
    languages = []
    for lang, corpus in corpora.items():
        found = discover_models(out / "exp", lang)
        want_models = list(models) if models else sorted({"sso", "mso"} | {m for m, _ in found})
        want_seeds = list(seeds) if seeds is not None else sorted({s for _, s in found})
        if not want_seeds:
            notes.append(f"{lang}: no trained model under {out / 'exp' / lang}; language skipped")
            missing += [f"{lang}/{m}" for m in model_order(want_models)]
            continue
        manifest = Path(corpus) / "fbank" / "test.jsonl.gz"
        for seed in want_seeds:
            paths = {}
            for m in model_order(want_models):
                path = found.get((m, seed))
                if path is None:
                    missing.append(f"{lang}/{m}/seed{seed}")
                else:
                    paths[m] = path
            if len(paths) < 2 and not any(m not in SINGLE for m in paths):
                notes.append(f"{lang} seed{seed}: fewer than two models and no dual-output model; nothing to compare")
                continue
            if not manifest.exists():
                if not (Path(corpus) / "cuts_test.jsonl.gz").exists():
                    raise ManifestError(f"{corpus}: no cuts_test.jsonl.gz to analyse ({lang})")
                compute_features(corpus, splits=("test",), progress=False)
            t0 = time.perf_counter()
            result, cached = _cached_run(
                out / "analysis" / lang / f"seed{seed}.json",
                _fingerprint(paths, manifest, options),
                lambda lang=lang, seed=seed, paths=paths, manifest=manifest: analyze_run(
                    lang, seed, paths, manifest, batch_size, max_utterances, device
                ),
                force,
            )  # fmt: skip
            rows += result.rows
            notes += result.notes
            if lang not in languages:
                languages.append(lang)
            how = "cached" if cached else f"{time.perf_counter() - t0:.1f} s"
            echo(
                f"analyze {lang}/seed{seed}: {', '.join(paths)} on {result.n_utterances} utterances "
                f"({result.n_frames} encoder frames) ({how})"
            )
    if missing:
        msg = f"analyze: skipped {len(missing)} missing model(s) (no model.pt): {', '.join(missing)}"
        echo(msg)
        notes.insert(0, msg)
    estimator = "debiased" if debiased else "biased"
    for r in rows:
        r["cka"] = r["cka_debiased"] if debiased else r["cka_biased"]
        r["estimator"] = estimator
    ent = entanglement_rows(rows)
    files = write_tables(rows, ent, out, notes)
    files += [
        plot_encoder(rows, out / "figures" / "cka_encoder.png", languages),
        plot_decoder(rows, out / "figures" / "cka_decoder.png", languages),
    ]
    return AnalysisResult(rows, ent, files, missing, notes)


# ------------------------------------------------------------------ entanglement


def _matching(rows: Sequence[dict], kind: str, lang: str, seed: int, pair: str) -> list[float]:
    """CKA at matching layers (layer_x == layer_y), in layer order."""
    sel = [r for r in rows if (r["kind"], r["lang"], r["seed"], r["pair"]) == (kind, lang, seed, pair)]
    return [r["cka"] for r in sorted(sel, key=lambda r: r["layer_x"]) if r["layer_x"] == r["layer_y"]]


def _last(rows: Sequence[dict], kind: str, lang: str, seed: int, pair: str) -> float:
    """CKA between the last layers of the two sides."""
    sel = [r for r in rows if (r["kind"], r["lang"], r["seed"], r["pair"]) == (kind, lang, seed, pair)]
    if not sel:
        return math.nan
    lx, ly = max(r["layer_x"] for r in sel), max(r["layer_y"] for r in sel)
    return next(r["cka"] for r in sel if (r["layer_x"], r["layer_y"]) == (lx, ly))


def entanglement_rows(rows: Sequence[dict]) -> list[dict]:
    """One row per (language, seed) for the SO pair and one per dual-output model:
    the index (module docstring), its mean over matching layers, the SO reference,
    the excess, the encoder index and every layer's value."""
    out = []
    runs = sorted({(r["lang"], r["seed"]) for r in rows})
    for lang, seed in runs:
        dec = [r for r in rows if (r["kind"], r["lang"], r["seed"]) == ("decoder", lang, seed)]
        so = _last(rows, "decoder", lang, seed, "SSO vs MSO")
        duals = model_order({r["model_x"] for r in dec if r["model_x"] == r["model_y"]})
        entries = [("sso+mso", "SSO vs MSO")] if any(r["pair"] == "SSO vs MSO" for r in dec) else []
        entries += [(d, f"{label(d, 'surface')} vs {label(d, 'meaning')}") for d in duals]
        for model, pair in entries:
            layers = _matching(rows, "decoder", lang, seed, pair)
            if model == "sso+mso":
                enc = _last(rows, "encoder", lang, seed, "SSO vs MSO")
            elif any((r["kind"], r["lang"], r["seed"], r["pair"]) == ("encoder", lang, seed, pair) for r in rows):
                enc = _last(rows, "encoder", lang, seed, pair)  # task-specific branches
            else:
                enc = 1.0  # one shared encoder feeds both outputs: the same tensor
            index = _last(rows, "decoder", lang, seed, pair)
            n = next(r["n"] for r in dec if r["pair"] == pair)
            out.append({
                "lang": lang, "seed": seed, "model": model, "pair": pair, "index": index,
                "index_mean_layers": float(np.mean(layers)) if layers else math.nan,
                "so_reference": so, "excess": index - so, "encoder_index": enc,
                "layers": ";".join(fmt_number(v) for v in layers),
                "estimator": dec[0]["estimator"], "n": n,
            })  # fmt: skip
    return out


# ------------------------------------------------------------------ tables


def _csv(columns: Sequence[str], rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([fmt_number(r[c], 6) if isinstance(r[c], float) else r[c] for c in columns])
    return buf.getvalue()


def _cell(values: Sequence[float]) -> str:
    """mean ± std over seeds (just the mean for one seed; — when undefined)."""
    values = [v for v in values if not math.isnan(v)]
    return fmt_rate(*mean_std(values), len(values))


def _pair_order(rows: Sequence[dict], kind: str) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r["kind"] == kind and r["pair"] not in seen:
            seen.append(r["pair"])
    return seen


def _per_seed(rows: Sequence[dict], kind: str, lang: str, pair: str, layer: int) -> list[float]:
    return [
        r["cka"] for r in rows
        if (r["kind"], r["lang"], r["pair"], r["layer_x"], r["layer_y"]) == (kind, lang, pair, layer, layer)
    ]  # fmt: skip


def _header(kind: str, rows: Sequence[dict]) -> list[str]:
    seeds = sorted({r["seed"] for r in rows})
    est = rows[0]["estimator"] if rows else "debiased"
    level = "frame level (every valid encoder frame of the test set)" if kind == "encoder" else (
        "utterance level (each decoder's states averaged over the utterance's valid tokens, "
        "teacher-forced on its own reference)"
    )  # fmt: skip
    spread = "mean ± sample std over seeds" if len(seeds) > 1 else "one seed"
    return [
        f"Linear CKA ({est}), {level}; test set; {spread} (seeds: {', '.join(map(str, seeds))}). "
        "Layer 0 = the first block's output. *reference study*: Cho & Kim (2026), where stated "
        "(secondary sources; shown only for models of the reference depth).",
        "",
    ]


def encoder_markdown(rows: Sequence[dict], notes: Sequence[str] = ()) -> str:
    """``tables/cka_encoder.md``: Table 3's layout, per language rows = encoder
    layer, columns = pairs (matching layers)."""
    enc = [r for r in rows if r["kind"] == "encoder"]
    lines = ["# Encoder CKA at matching layers (Table 3 layout)", ""] + _header("encoder", enc)
    for lang in sorted({r["lang"] for r in enc}):
        sel = [r for r in enc if r["lang"] == lang]
        pairs = _pair_order(sel, "encoder")
        n_layers = 1 + max(r["layer_x"] for r in sel if r["layer_x"] == r["layer_y"])
        ref = REFERENCE_ENCODER.get(lang) if n_layers == REFERENCE_ENCODER_LAYERS else None
        head = ["layer", *pairs] + (["SSO vs MSO, reference study"] if ref else [])
        body = []
        for layer in range(n_layers):
            cells = [_cell(_per_seed(sel, "encoder", lang, p, layer)) for p in pairs]
            if ref:
                cells.append(f"{ref[layer]:.2f}" if layer in ref else "")
            body.append([str(layer), *cells])
        lines += [f"## {lang}", "", *markdown_table(head, body), ""]
    if not enc:
        lines.append("No encoder pair could be computed.")
    return "\n".join(lines + _notes(notes))


def _selected_layers(n: int) -> list[int]:
    """First, middle and last layer: 0/3/7 for the reference study's 8 layers."""
    return sorted({0, max(0, n // 2 - 1), n - 1})


def decoder_markdown(rows: Sequence[dict], notes: Sequence[str] = ()) -> str:
    """``tables/cka_decoder.md``: Table 4's layout (rows = pairs, columns =
    languages, cells = CKA at the first / middle / last decoder layer), then every
    layer per language."""
    dec = [r for r in rows if r["kind"] == "decoder"]
    lines = ["# Decoder CKA (Table 4 layout)", ""] + _header("decoder", dec)
    if not dec:
        return "\n".join(lines + ["No decoder pair could be computed.", *_notes(notes)])
    langs = sorted({r["lang"] for r in dec})
    pairs = _pair_order(dec, "decoder")
    n_layers = {
        lang: 1 + max(r["layer_x"] for r in dec if r["lang"] == lang and r["layer_x"] == r["layer_y"])
        for lang in langs
    }  # fmt: skip
    head = ["pair", *(f"{lang} (layers {' / '.join(map(str, _selected_layers(n_layers[lang])))})" for lang in langs)]
    body = []
    for p in pairs:
        cells = []
        for lang in langs:
            vals = [_cell(_per_seed(dec, "decoder", lang, p, layer)) for layer in _selected_layers(n_layers[lang])]
            cells.append(" / ".join(vals))
        body.append([p, *cells])
        refs = []
        for lang in langs:
            ref = REFERENCE_DECODER.get((lang, p)) if n_layers[lang] == REFERENCE_DECODER_LAYERS else None
            refs.append(" / ".join(f"{ref[k]:.2f}" if k in ref else "-" for k in (0, 3, 7)) if ref else "")
        if any(refs):
            body.append([f"{p}, reference study", *refs])
    lines += markdown_table(head, body) + [""]
    for lang in langs:
        head = ["pair", *(f"layer {k}" for k in range(n_layers[lang]))]
        body = [
            [p, *(_cell(_per_seed(dec, "decoder", lang, p, k)) for k in range(n_layers[lang]))]
            for p in pairs
            if any(r["pair"] == p and r["lang"] == lang for r in dec)
        ]  # fmt: skip
        lines += [f"## {lang}, every decoder layer", "", *markdown_table(head, body), ""]
    return "\n".join(lines + _notes(notes))


def entanglement_markdown(ent: Sequence[dict]) -> str:
    """``tables/entanglement.md``: index, mean over layers, excess over the SO pair
    and encoder index per language and model, mean ± std over seeds."""
    lines = [
        "# Entanglement index",
        "",
        "E = linear CKA (utterance level, test set) between the last layer of a model's surface "
        "decoder and of its meaning decoder; for the SO pair, between the SSO and MSO decoders. "
        "Excess = E(model) − E(SO pair), same language and seed: > 0 means the model's two outputs "
        "are represented more alike than those of two independently trained single-output models. "
        "Encoder index: CKA of the last encoder layers feeding the two outputs (1 for a shared "
        "encoder). Definition: `dualasr/analysis/analyze.py`, docs/analysis.md.",
        "",
    ]
    head = ["language", "model", "pair", "E (last layer)", "E (mean over layers)", "excess", "encoder index", "seeds"]
    body = []
    for lang in sorted({r["lang"] for r in ent}):
        sel = [r for r in ent if r["lang"] == lang]
        order = ["sso+mso"] + model_order({r["model"] for r in sel} - {"sso+mso"})
        for model in order:
            rs = [r for r in sel if r["model"] == model]
            if not rs:
                continue
            body.append([
                lang, model, rs[0]["pair"], _cell([r["index"] for r in rs]),
                _cell([r["index_mean_layers"] for r in rs]), _cell([r["excess"] for r in rs]),
                _cell([r["encoder_index"] for r in rs]), str(len(rs)),
            ])  # fmt: skip
    lines += markdown_table(head, body) if body else ["No model with two decoders and no SO pair."]
    return "\n".join(lines) + "\n"


def _notes(notes: Sequence[str]) -> list[str]:
    return (["", "## Notes", ""] + [f"- {n}" for n in notes] + [""]) if notes else [""]


def write_tables(rows: Sequence[dict], ent: Sequence[dict], out_dir: Path, notes: Sequence[str] = ()) -> list[Path]:
    """Write the CSV and markdown tables under ``out_dir/tables`` (atomically, overwriting)."""
    tables = Path(out_dir) / "tables"
    files = {
        "cka_encoder.csv": _csv(CKA_COLUMNS, [r for r in rows if r["kind"] == "encoder"]),
        "cka_encoder.md": encoder_markdown(rows, notes),
        "cka_decoder.csv": _csv(CKA_COLUMNS, [r for r in rows if r["kind"] == "decoder"]),
        "cka_decoder.md": decoder_markdown(rows, notes),
        "entanglement.csv": _csv(ENTANGLEMENT_COLUMNS, ent),
        "entanglement.md": entanglement_markdown(ent),
    }
    paths = []
    for name, text in files.items():
        atomic_write_text(tables / name, text, overwrite=True)
        paths.append(tables / name)
    return paths


# ------------------------------------------------------------------ figures




def _integer_ticks(ax, y: bool = False) -> None:
    """Layer axes show whole layer numbers only."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if y:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _mean_matrix(rows: Sequence[dict]) -> np.ndarray:
    """Seed-mean (layer_x, layer_y) matrix of the rows of one language and pair."""
    nx = 1 + max(r["layer_x"] for r in rows)
    ny = 1 + max(r["layer_y"] for r in rows)
    total, count = np.zeros((nx, ny)), np.zeros((nx, ny))
    for r in rows:
        if not math.isnan(r["cka"]):
            total[r["layer_x"], r["layer_y"]] += r["cka"]
            count[r["layer_x"], r["layer_y"]] += 1
    with np.errstate(invalid="ignore"):
        return total / count


def _curve(rows: Sequence[dict], kind: str, lang: str, pair: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layers, seed means and stds (0 for one seed) at matching layers."""
    sel = [r for r in rows if (r["kind"], r["lang"], r["pair"]) == (kind, lang, pair)]
    layers = sorted({r["layer_x"] for r in sel if r["layer_x"] == r["layer_y"]})
    stats = [mean_std([v for v in _per_seed(sel, kind, lang, pair, k) if not math.isnan(v)]) for k in layers]
    mean = np.array([m for m, _ in stats])
    std = np.nan_to_num(np.array([s for _, s in stats]))
    return np.array(layers), mean, std


def plot_encoder(rows: Sequence[dict], path: Path, languages: Sequence[str]) -> Path:
    """``figures/cka_encoder.png``: per language a row of layer-by-layer heatmaps
    (one per pair, seed means) and a panel of matching-layer curves (± std)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend

    enc = [r for r in rows if r["kind"] == "encoder"]
    langs = [lang for lang in languages if any(r["lang"] == lang for r in enc)]
    n_pairs = max([len(_pair_order([r for r in enc if r["lang"] == lang], "encoder")) for lang in langs] + [1])
    fig = Figure(figsize=(3.2 * (n_pairs + 1), 3.0 * max(1, len(langs))), layout="constrained")
    axes = fig.subplots(max(1, len(langs)), n_pairs + 1, squeeze=False)
    image = None
    for i, lang in enumerate(langs):
        sel = [r for r in enc if r["lang"] == lang]
        pairs = _pair_order(sel, "encoder")
        for j, pair in enumerate(pairs):
            ax = axes[i, j]
            m = _mean_matrix([r for r in sel if r["pair"] == pair])
            image = ax.imshow(m, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto")
            ax.set_title(f"{lang}: {pair}", fontsize="medium")
            x_name, y_name = pair.split(" vs ")
            ax.set_ylabel(f"{x_name} layer")
            ax.set_xlabel(f"{y_name} layer")
            _integer_ticks(ax, y=True)
        for j in range(len(pairs), n_pairs):
            axes[i, j].set_visible(False)
        ax = axes[i, n_pairs]
        for pair in pairs:
            x, mean, std = _curve(sel, "encoder", lang, pair)
            ax.plot(x, mean, "o-", ms=3, label=pair)
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        n_layers = 1 + max(r["layer_x"] for r in sel)
        if lang in REFERENCE_ENCODER and n_layers == REFERENCE_ENCODER_LAYERS:
            ref = REFERENCE_ENCODER[lang]
            ax.plot(list(ref), list(ref.values()), "s--", color="gray", mfc="none", label="SSO vs MSO, reference")
        ax.set_ylim(-0.05, 1.05)
        _integer_ticks(ax)
        ax.set_xlabel("layer")
        ax.set_ylabel("CKA (matching layers)")
        ax.set_title(f"{lang}: matching layers", fontsize="medium")
        ax.legend(fontsize="small")
    if image is not None:
        fig.colorbar(image, ax=axes[:, :-1].ravel().tolist(), shrink=0.8, label="linear CKA")
    if not langs:
        axes[0, 0].text(0.5, 0.5, "no encoder pair", ha="center", va="center")
    return save_figure(fig, path, dpi=110)


def plot_decoder(rows: Sequence[dict], path: Path, languages: Sequence[str]) -> Path:
    """``figures/cka_decoder.png``: per language the matching-layer CKA of every
    decoder pair (seed means ± std); the within-model pair (entanglement) dashed."""
    from matplotlib.figure import Figure

    dec = [r for r in rows if r["kind"] == "decoder"]
    langs = [lang for lang in languages if any(r["lang"] == lang for r in dec)]
    fig = Figure(figsize=(5.5 * max(1, len(langs)), 4.0), layout="constrained")
    axes = fig.subplots(1, max(1, len(langs)), squeeze=False)[0]
    for ax, lang in zip(axes, langs, strict=False):
        sel = [r for r in dec if r["lang"] == lang]
        for pair in _pair_order(sel, "decoder"):
            p0 = next(r for r in sel if r["pair"] == pair)
            within = p0["model_x"] == p0["model_y"]
            x, mean, std = _curve(sel, "decoder", lang, pair)
            ax.plot(x, mean, "o--" if within else "o-", ms=3, label=pair + (" (entanglement)" if within else ""))
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("decoder layer")
        ax.set_ylabel("CKA (utterance level, matching layers)")
        ax.set_title(lang)
        _integer_ticks(ax)
        ax.legend(fontsize="small")
    if not langs:
        axes[0].text(0.5, 0.5, "no decoder pair", ha="center", va="center")
    return save_figure(fig, path, dpi=110)
