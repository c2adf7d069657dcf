"""``dualasr analyze``: layer-wise CKA between the models of a study, and an
entanglement index per model (the reference study's Tables 3 and 4, and beyond).

Reads (``DIR`` = a study directory, :mod:`dualasr.layout`)::

    DIR/corpora.json                          language -> corpus directory
    <corpus>/fbank/test.jsonl.gz              test cuts with features (computed if missing)
    DIR/exp/<lang>/<name>/seed<k>/run.json   what each run is (outputs, label, model config)
    DIR/exp/<lang>/<name>/seed<k>/model.pt   trained models

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

Which model is what comes from each run's ``run.json`` (:mod:`dualasr.layout`):
SSO and MSO below are the single-output baselines of the surface and meaning
outputs (:func:`~dualasr.layout.baseline_of`), every run with both outputs is
a dual-output model, and pairs are named by the runs' labels (``SSO vs
do_split2``; a dual-output model's decoders are ``SDO``/``MDO`` for the label
``DO``, ``<label> surface``/``<label> meaning`` otherwise).

* **Encoder, frame level**: the rows are the valid encoder frames (1/4 of the
  feature rate) of every test utterance, aligned across models (same audio, same
  subsampling). Pairs: SSO vs MSO, SSO vs DO, MSO vs DO. A DO model's encoder
  layers are its shared trunk followed by *the branch of the output being
  compared* when it has task-specific top blocks (``encoder.task_specific_layers``
  of its ``run.json`` model config): its surface branch against SSO, its meaning
  branch against MSO, since that is the stack that feeds the output the
  single-output model also produces. Layer k of a branch is block k of that
  stack (the trunk's blocks, then the branch's), so it meets block k of the
  single-output encoder: the same depth. Per-output adapters give each output
  its own stream in the same way (the top blocks followed by that output's
  adapters); a hierarchical model's surface stack stops at the block its CTC
  reads (``hierarchy.surface_layer``), so it meets the first ``k`` blocks of
  SSO. When the two outputs read different stacks they are also compared with
  each other (pair SDO vs MDO at encoder level; its last layers give the
  encoder index).
* **Decoder, utterance level**: each decoder is teacher-forced on its own
  reference (surface or meaning text), so the two tasks' token sequences differ
  in length; each utterance is the mean of its decoder states over its valid
  positions (``sos`` and the reference tokens). Pairs (SDO/MDO = the DO model's
  surface/meaning decoder): SSO vs MSO, MSO vs MDO, SSO vs SDO, and the
  cross-task MSO vs SDO and SSO vs MDO; plus SDO vs MDO, the entanglement curve.

Every dual-output run gets its own pairs (``do_x`` gives ``SSO vs do_x``,
``MSO vs do_x meaning``, ``do_x surface vs do_x meaning``, ...).

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dualasr.analysis.capture import capture_batches
from dualasr.analysis.cka import LinearCKAAccumulator
from dualasr.atomic import atomic_write_text, save_figure
from dualasr.data.manifest import ManifestError
from dualasr.layout import (
    EXP_DIR,
    LayoutError,
    RunInfo,
    analysis_split,
    baseline_of,
    discover_runs,
    manifest_path,
    read_corpora,
    test_splits,
)  # fmt: skip
from dualasr.reference import CITATION, REFERENCE_LAYERS, reference_cka
from dualasr.score.rates import fmt_number, fmt_rate, mean_std, notes_markdown
from dualasr.tables import Table, markdown

#: Bump when the cached numbers would change for the same inputs.
CACHE_VERSION = 2

CKA_COLUMNS = (
    "lang", "seed", "pair", "model_x", "output_x", "label_x", "model_y", "output_y", "label_y",
    "layer_x", "layer_y", "cka", "cka_biased", "estimator", "level", "n",
)  # fmt: skip
ENTANGLEMENT_COLUMNS = (
    "lang", "seed", "model", "label", "pair", "index", "index_mean_layers", "so_reference",
    "excess", "encoder_index", "layers", "estimator", "n",
)  # fmt: skip

_TAG = {"surface": "S", "meaning": "M"}


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


def side_label(info: RunInfo, output: str | None = None) -> str:
    """How a pair names one side: the run's label; a dual-output model's decoder
    (or encoder branch) of ``output`` is SDO / MDO for the label DO, as in the
    reference study, and ``<label> <output>`` for any other label."""
    if info.single or output is None:
        return info.label
    return _TAG[output] + info.label if info.label == "DO" else f"{info.label} {output}"


def plan_pairs(runs: Sequence[RunInfo]) -> list[Pair]:
    """The pairs computable from the runs of one language and seed. SSO and MSO
    are the baselines of the surface and meaning outputs; every run with both
    outputs is a dual-output model, compared in each output with that output's
    baseline; a dual-output run whose outputs read different encoder stacks
    (:func:`separate_encoder_stacks`) also gets the two stacks compared. Order: encoder pairs, then decoder pairs in Table 4's order."""
    duals = [r for r in runs if set(r.outputs) == {"surface", "meaning"}]
    probe = duals[0] if duals else next(iter(runs), None)
    sso = baseline_of(probe, "surface", runs) if probe else None
    mso = baseline_of(probe, "meaning", runs) if probe else None
    enc: list[Pair] = []
    dec: list[Pair] = []
    if sso and mso:
        s, m = (sso.name, "surface"), (mso.name, "meaning")
        enc.append(Pair(f"{sso.label} vs {mso.label}", "encoder", s, m))
        dec.append(Pair(f"{sso.label} vs {mso.label}", "decoder", s, m))
    for d in duals:
        ds, dm = (d.name, "surface"), (d.name, "meaning")
        if sso:
            enc.append(Pair(f"{sso.label} vs {d.label}", "encoder", (sso.name, "surface"), ds))
        if mso:
            enc.append(Pair(f"{mso.label} vs {d.label}", "encoder", (mso.name, "meaning"), dm))
        if separate_encoder_stacks(d):
            enc.append(Pair(f"{side_label(d, 'surface')} vs {side_label(d, 'meaning')}", "encoder", ds, dm))
    for d in duals:
        ds, dm = (d.name, "surface"), (d.name, "meaning")
        S, M = side_label(d, "surface"), side_label(d, "meaning")
        if mso:
            dec.append(Pair(f"{mso.label} vs {M}", "decoder", (mso.name, "meaning"), dm))
        if sso:
            dec.append(Pair(f"{sso.label} vs {S}", "decoder", (sso.name, "surface"), ds))
        if mso:
            dec.append(Pair(f"{mso.label} vs {S}", "decoder", (mso.name, "meaning"), ds))
        if sso:
            dec.append(Pair(f"{sso.label} vs {M}", "decoder", (sso.name, "surface"), dm))
        dec.append(Pair(f"{S} vs {M}", "decoder", ds, dm))
    return enc + dec


def separate_encoder_stacks(info: RunInfo) -> bool:
    """Whether the two outputs of a run read different encoder stacks (its saved
    model config): task-specific blocks, per-output adapters, or a hierarchy
    whose surface output reads an intermediate block."""
    cfg = info.model_config
    return bool(task_specific_layers(info) or cfg.get("adapters") or cfg.get("hierarchy"))


def task_specific_layers(info: RunInfo) -> int:
    """Task-specific top encoder blocks per output of a run (its saved model config)."""
    return int(info.model_config.get("encoder", {}).get("task_specific_layers", 0))


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


def _fingerprint(runs: dict[str, tuple[RunInfo, Path]], manifest: Path, options: dict) -> dict:
    def stamp(p: Path) -> list:
        st = p.stat()
        return [str(p.resolve()), st.st_size, st.st_mtime_ns]

    return {
        "version": CACHE_VERSION,
        "models": {name: stamp(p) + [stamp(p.parent / "run.json")] for name, (_, p) in sorted(runs.items())},
        "manifest": stamp(manifest),
        "options": options,
    }


def analyze_run(
    lang: str,
    seed: int,
    runs: dict[str, tuple[RunInfo, Path]],
    manifest: Path,
    batch_size: int = 16,
    max_utterances: int | None = None,
    device=None,
) -> RunResult:
    """CKA of every pair of :func:`plan_pairs` for the runs ``runs`` (name ->
    (identity, model.pt)) of one language and seed, over ``manifest`` (cuts with
    features). A checkpoint that disagrees with its ``run.json`` (outputs,
    task-specific encoder blocks) is an error naming both files."""
    from dualasr.device import pick_device
    from dualasr.model.checkpoint import load_model

    device = device or pick_device()
    notes: list[str] = []
    loaded = {}
    for name, (info, path) in runs.items():
        model, tokenizers = load_model(path, device)
        branches = {o: len(b) for o, b in model.encoder.branches.items()}
        want = {o: task_specific_layers(info) for o in info.outputs} if task_specific_layers(info) else {}
        if tuple(model.outputs) != info.outputs or branches != want:
            raise LayoutError(
                f"{path}: outputs {tuple(model.outputs)} with task-specific encoder blocks {branches or 'none'}, "
                f"but {path.parent / 'run.json'} says {info.outputs} with {want or 'none'}"
            )
        loaded[name] = (model, tokenizers)
    infos = {name: info for name, (info, _) in runs.items()}
    pairs = plan_pairs(list(infos.values()))
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
                    "model_x": p.x[0], "output_x": p.x[1], "label_x": infos[p.x[0]].label,
                    "model_y": p.y[0], "output_y": p.y[1], "label_y": infos[p.y[0]].label,
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
    models, seeds: the runs expected (default: every ``exp/<lang>/<name>/seed<k>``
        found); an expected run without ``model.pt`` is skipped and counted in
        :attr:`AnalysisResult.missing`.
    force: recompute even where the cache under ``DIR/analysis`` is current."""
    from dualasr.data.features import compute_features
    from dualasr.model.checkpoint import MODEL_FILE

    out = Path(study_dir)
    corpora = read_corpora(out)
    options = {"batch_size": batch_size, "max_utterances": max_utterances}
    rows: list[dict] = []
    notes: list[str] = []
    missing: list[str] = []
    languages = []
    for lang, corpus in corpora.items():
        found = {(r.info.name, r.info.seed): r for r in discover_runs(out / EXP_DIR, [lang])}
        want_models = list(dict.fromkeys(models or [name for name, _ in found]))
        want_seeds = list(seeds) if seeds is not None else sorted({s for _, s in found})
        if not want_seeds:
            notes.append(f"{lang}: no trained model under {out / EXP_DIR / lang}; language skipped")
            missing += [f"{lang}/{m}" for m in want_models]
            continue
        # One test split per language: CKA compares the models, not the data regimes.
        split = analysis_split(test_splits(corpus) or ("test",))
        manifest = Path(corpus) / "fbank" / f"{split}.jsonl.gz"
        for seed in want_seeds:
            runs = {}
            for m in want_models:
                run = found.get((m, seed))
                if run is None or not (run.dir / MODEL_FILE).is_file():
                    missing.append(f"{lang}/{m}/seed{seed}")
                else:
                    runs[m] = (run.info, run.dir / MODEL_FILE)
            if len(runs) < 2 and all(info.single for info, _ in runs.values()):
                notes.append(f"{lang} seed{seed}: fewer than two models and no dual-output model; nothing to compare")
                continue
            if not manifest.exists():
                if not manifest_path(corpus, split).exists():
                    raise ManifestError(f"{corpus}: no cuts_{split}.jsonl.gz to analyse ({lang})")
                compute_features(corpus, splits=(split,), progress=False)
            t0 = time.perf_counter()
            result, cached = _cached_run(
                out / "analysis" / lang / f"seed{seed}.json",
                _fingerprint(runs, manifest, options),
                lambda lang=lang, seed=seed, runs=runs, manifest=manifest: analyze_run(
                    lang, seed, runs, manifest, batch_size, max_utterances, device
                ),
                force,
            )  # fmt: skip
            rows += result.rows
            notes += result.notes
            if lang not in languages:
                languages.append(lang)
            how = "cached" if cached else f"{time.perf_counter() - t0:.1f} s"
            echo(
                f"analyze {lang}/seed{seed}: {', '.join(runs)} on {result.n_utterances} utterances "
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
        # A dual-output model is one whose two decoders form a pair; the SO pair
        # is the surface-vs-meaning pair of two other (single-output) models.
        within = {r["model_x"]: r for r in dec if r["model_x"] == r["model_y"]}
        so_pair = next((r for r in dec if r["model_x"] != r["model_y"] and not {r["model_x"], r["model_y"]} & set(within)
                        and (r["output_x"], r["output_y"]) == ("surface", "meaning")), None)  # fmt: skip
        so = _last(rows, "decoder", lang, seed, so_pair["pair"]) if so_pair else math.nan
        entries = []
        if so_pair:
            entries.append((f"{so_pair['model_x']}+{so_pair['model_y']}",
                            f"{so_pair['label_x']}+{so_pair['label_y']}", so_pair["pair"]))  # fmt: skip
        entries += [(d, r["label_x"], r["pair"]) for d, r in within.items()]
        for model, model_label, pair in entries:
            layers = _matching(rows, "decoder", lang, seed, pair)
            if so_pair and pair == so_pair["pair"]:
                enc = _last(rows, "encoder", lang, seed, pair)
            elif any((r["kind"], r["lang"], r["seed"], r["pair"]) == ("encoder", lang, seed, pair) for r in rows):
                enc = _last(rows, "encoder", lang, seed, pair)  # task-specific branches
            else:
                enc = 1.0  # one shared encoder feeds both outputs: the same tensor
            index = _last(rows, "decoder", lang, seed, pair)
            n = next(r["n"] for r in dec if r["pair"] == pair)
            out.append({
                "lang": lang, "seed": seed, "model": model, "label": model_label, "pair": pair, "index": index,
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


def _pair_sides(rows: Sequence[dict], lang: str, pair: str) -> tuple[tuple[str, str], tuple[str, str]]:
    r = next(r for r in rows if (r["lang"], r["pair"]) == (lang, pair))
    return (r["model_x"], r["output_x"]), (r["model_y"], r["output_y"])


def _reference(kind: str, rows: Sequence[dict], lang: str, pair: str, n_layers: int) -> dict[int, float]:
    """The reference study's CKA of ``pair`` (by the runs it compares), only for
    models of the reference depth: a layer index only matches the same index."""
    if n_layers != REFERENCE_LAYERS[kind]:
        return {}
    return reference_cka(kind, lang, *_pair_sides(rows, lang, pair))


def intro(kind: str, rows: Sequence[dict]) -> str:
    """What a CKA table's cells are (estimator, level, seeds)."""
    seeds = sorted({r["seed"] for r in rows})
    est = rows[0]["estimator"] if rows else "debiased"
    level = "frame level (every valid encoder frame of the test set)" if kind == "encoder" else (
        "utterance level (each decoder's states averaged over the utterance's valid tokens, "
        "teacher-forced on its own reference)"
    )  # fmt: skip
    spread = "mean ± sample std over seeds" if len(seeds) > 1 else "one seed"
    return (
        f"Linear CKA ({est}), {level}; test set (test_unseen where the corpus has test_seen and test_unseen); {spread} (seeds: {', '.join(map(str, seeds))}). "
        f"Layer 0 = the first block's output. *reference study*: {CITATION}, where stated "
        "(secondary sources; shown only for models of the reference depth)."
    )


def _n_layers(rows: Sequence[dict]) -> int:
    return 1 + max(r["layer_x"] for r in rows if r["layer_x"] == r["layer_y"])


def encoder_tables(rows: Sequence[dict]) -> list[Table]:
    """Table 3's layout per language: rows = encoder layer, columns = pairs
    (matching layers), the reference study's SSO vs MSO beside them."""
    enc = [r for r in rows if r["kind"] == "encoder"]
    tables = []
    for lang in sorted({r["lang"] for r in enc}):
        sel = [r for r in enc if r["lang"] == lang]
        pairs = _pair_order(sel, "encoder")
        n_layers = _n_layers(sel)
        refs = {p: ref for p in pairs if (ref := _reference("encoder", sel, lang, p, n_layers))}
        head = ["layer", *pairs, *(f"{p}, reference study" for p in refs)]
        table = Table(head, caption=f"{lang}: encoder CKA at matching layers")
        for layer in range(n_layers):
            cells = [_cell(_per_seed(sel, "encoder", lang, p, layer)) for p in pairs]
            cells += [f"{ref[layer]:.2f}" if layer in ref else "" for ref in refs.values()]
            table.add([str(layer), *cells])
        tables.append(table)
    return tables


def _selected_layers(n: int) -> list[int]:
    """First, middle and last layer: 0/3/7 for the reference study's 8 layers."""
    return sorted({0, max(0, n // 2 - 1), n - 1})


def decoder_tables(rows: Sequence[dict]) -> list[Table]:
    """Table 4's layout (rows = pairs, columns = languages, cells = CKA at the
    first / middle / last decoder layer, reference rows beneath), then every
    layer per language."""
    dec = [r for r in rows if r["kind"] == "decoder"]
    if not dec:
        return []
    langs = sorted({r["lang"] for r in dec})
    pairs = _pair_order(dec, "decoder")
    n_layers = {lang: _n_layers([r for r in dec if r["lang"] == lang]) for lang in langs}
    head = ["pair", *(f"{lang} (layers {' / '.join(map(str, _selected_layers(n_layers[lang])))})" for lang in langs)]
    summary = Table(head, caption="Decoder CKA (Table 4 layout)")
    for p in pairs:
        cells, refs = [], []
        for lang in langs:
            if not any((r["lang"], r["pair"]) == (lang, p) for r in dec):
                cells.append("")
                refs.append("")
                continue
            vals = [_cell(_per_seed(dec, "decoder", lang, p, layer)) for layer in _selected_layers(n_layers[lang])]
            cells.append(" / ".join(vals))
            ref = _reference("decoder", dec, lang, p, n_layers[lang])
            refs.append(" / ".join(f"{ref[k]:.2f}" if k in ref else "-" for k in (0, 3, 7)) if ref else "")
        summary.add([p, *cells])
        if any(refs):
            summary.add([f"{p}, reference study", *refs], reference=True)
    tables = [summary]
    for lang in langs:
        table = Table(["pair", *(f"layer {k}" for k in range(n_layers[lang]))], caption=f"{lang}: every decoder layer")
        for p in pairs:
            if any(r["pair"] == p and r["lang"] == lang for r in dec):
                table.add([p, *(_cell(_per_seed(dec, "decoder", lang, p, k)) for k in range(n_layers[lang]))])
        tables.append(table)
    return tables


ENTANGLEMENT_INTRO = (
    "E = linear CKA (utterance level, test set) between the last layer of a model's surface "
    "decoder and of its meaning decoder; for the SO pair, between the SSO and MSO decoders. "
    "Excess = E(model) − E(SO pair), same language and seed: > 0 means the model's two outputs "
    "are represented more alike than those of two independently trained single-output models. "
    "Encoder index: CKA of the last encoder layers feeding the two outputs (1 for a shared "
    "encoder). Definition: `dualasr/analysis/analyze.py`, docs/analysis.md."
)


def entanglement_table(ent: Sequence[dict]) -> Table:
    """Index, mean over layers, excess over the SO pair and encoder index per
    language and model (by label, SO pair first), mean ± std over seeds."""
    head = ["language", "model", "pair", "E (last layer)", "E (mean over layers)", "excess", "encoder index", "seeds"]
    table = Table(head, caption="Entanglement index", labels=3)
    for lang in sorted({r["lang"] for r in ent}):
        sel = [r for r in ent if r["lang"] == lang]
        for model in dict.fromkeys(r["model"] for r in sel):
            rs = [r for r in sel if r["model"] == model]
            table.add([
                lang, rs[0]["label"], rs[0]["pair"], _cell([r["index"] for r in rs]),
                _cell([r["index_mean_layers"] for r in rs]), _cell([r["excess"] for r in rs]),
                _cell([r["encoder_index"] for r in rs]), str(len(rs)),
            ])  # fmt: skip
    return table


def encoder_markdown(rows: Sequence[dict], notes: Sequence[str] = ()) -> str:
    """``tables/cka_encoder.md``: :func:`encoder_tables`."""
    enc = [r for r in rows if r["kind"] == "encoder"]
    lines = ["# Encoder CKA at matching layers (Table 3 layout)", "", intro("encoder", enc)]
    lines += [x for t in encoder_tables(rows) for x in ("", markdown(t))] or ["", "No encoder pair could be computed."]
    return "\n".join(lines + notes_markdown(notes)) + "\n"


def decoder_markdown(rows: Sequence[dict], notes: Sequence[str] = ()) -> str:
    """``tables/cka_decoder.md``: :func:`decoder_tables`."""
    dec = [r for r in rows if r["kind"] == "decoder"]
    lines = ["# Decoder CKA (Table 4 layout)", "", intro("decoder", dec)]
    lines += [x for t in decoder_tables(rows) for x in ("", markdown(t))] or ["", "No decoder pair could be computed."]
    return "\n".join(lines + notes_markdown(notes)) + "\n"


def entanglement_markdown(ent: Sequence[dict]) -> str:
    """``tables/entanglement.md``: :func:`entanglement_table`."""
    body = markdown(entanglement_table(ent)) if ent else "No model with two decoders and no SO pair."
    return "\n".join(["# Entanglement index", "", ENTANGLEMENT_INTRO, "", body]) + "\n"


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


#: Heatmaps per row of ``cka_encoder.png``: a study of many variants has some
#: twenty encoder pairs per language, which one row would draw 70 inches wide.
HEATMAP_COLUMNS = 6


def plot_encoder(rows: Sequence[dict], path: Path, languages: Sequence[str]) -> Path:
    """``figures/cka_encoder.png``: per language a block of layer-by-layer
    heatmaps (one per pair, seed means, :data:`HEATMAP_COLUMNS` to a row) and
    beside it a panel of matching-layer curves (± std) as tall as the block."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend

    enc = [r for r in rows if r["kind"] == "encoder"]
    langs = [lang for lang in languages if any(r["lang"] == lang for r in enc)]
    pairs = {lang: _pair_order([r for r in enc if r["lang"] == lang], "encoder") for lang in langs}
    cols = min(HEATMAP_COLUMNS, max([len(p) for p in pairs.values()] + [1]))
    block = {lang: -(-len(pairs[lang]) // cols) for lang in langs}  # heatmap rows per language
    n_rows = max(1, sum(block.values()))
    fig = Figure(figsize=(3.2 * cols + 6.0, 3.0 * n_rows), layout="constrained")
    grid = fig.add_gridspec(n_rows, cols + 1, width_ratios=[1] * cols + [1.8])
    heatmaps, image, top = [], None, 0
    for lang in langs:
        sel = [r for r in enc if r["lang"] == lang]
        for k, pair in enumerate(pairs[lang]):
            ax = fig.add_subplot(grid[top + k // cols, k % cols])
            heatmaps.append(ax)
            m = _mean_matrix([r for r in sel if r["pair"] == pair])
            image = ax.imshow(m, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto")
            ax.set_title(f"{lang}: {pair}", fontsize="small" if len(pair) > 24 else "medium")
            x_name, y_name = pair.split(" vs ")
            ax.set_ylabel(f"{x_name} layer")
            ax.set_xlabel(f"{y_name} layer")
            _integer_ticks(ax, y=True)
        ax = fig.add_subplot(grid[top : top + block[lang], cols])
        top += block[lang]
        for pair in pairs[lang]:
            x, mean, std = _curve(sel, "encoder", lang, pair)
            ax.plot(x, mean, "o-", ms=3, label=pair)
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        for pair in pairs[lang]:
            ref = _reference("encoder", sel, lang, pair, 1 + max(r["layer_x"] for r in sel))
            if ref:
                ax.plot(list(ref), list(ref.values()), "s--", color="gray", mfc="none", label=f"{pair}, reference")
        ax.set_ylim(-0.05, 1.05)
        _integer_ticks(ax)
        ax.set_xlabel("layer")
        ax.set_ylabel("CKA (matching layers)")
        ax.set_title(f"{lang}: matching layers", fontsize="medium")
        ax.legend(fontsize="x-small" if len(pairs[lang]) > 8 else "small")
    if image is not None:
        fig.colorbar(image, ax=heatmaps, shrink=0.8, label="linear CKA")
    if not langs:
        fig.add_subplot(grid[0, 0]).text(0.5, 0.5, "no encoder pair", ha="center", va="center")
    return save_figure(fig, path, dpi=110)


def plot_decoder(rows: Sequence[dict], path: Path, languages: Sequence[str]) -> Path:
    """``figures/cka_decoder.png``: per language the matching-layer CKA of every
    decoder pair (seed means ± std); the within-model pair (entanglement) dashed."""
    from matplotlib.figure import Figure

    dec = [r for r in rows if r["kind"] == "decoder"]
    langs = [lang for lang in languages if any(r["lang"] == lang for r in dec)]
    # Many variants (some 30 pairs): the legend goes beside its panel, and the figure grows to hold it.
    pairs = {lang: _pair_order([r for r in dec if r["lang"] == lang], "decoder") for lang in langs}
    n_pairs = max([len(p) for p in pairs.values()] + [0])
    many = n_pairs > 8
    size = (9.5 * max(1, len(langs)), max(4.0, 0.8 + 0.15 * n_pairs)) if many else (5.5 * max(1, len(langs)), 4.0)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(1, max(1, len(langs)), squeeze=False)[0]
    for ax, lang in zip(axes, langs, strict=False):
        sel = [r for r in dec if r["lang"] == lang]
        for pair in pairs[lang]:
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
        if many:
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
        else:
            ax.legend(fontsize="small")
    if not langs:
        axes[0].text(0.5, 0.5, "no decoder pair", ha="center", va="center")
    return save_figure(fig, path, dpi=110)
