"""Study configuration: YAML validated on load.

Every section is a pydantic model that forbids unknown keys, so a typo or a
wrong type is an error naming the key path and the file (``conf/demo.yaml:
synth.sentences.train: Input should be a valid integer``).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from dualasr.errors import DualasrError
from dualasr.layout import default_label
from dualasr.model.config import MODE_OUTPUTS, PRESETS, LMConfig, Mode, ModelConfig
from dualasr.reference import REFERENCE_ED_SHARES

Language = Literal["en", "ko"]
# ``test``: the one test split of a corpus without a prompt pool; ``test_seen`` /
# ``test_unseen``: the two test regimes of a corpus read from a prompt pool
# (synth.prompts; the layout is in dualasr.layout.test_splits).
Split = Literal["train", "dev", "test", "test_seen", "test_unseen"]
# A count for every language, or one per language. The discriminator keeps
# validation errors to the form given (no message about the other form).
_Count = Annotated[int, Field(ge=0)]
_SentenceCount = Annotated[
    Annotated[_Count, Tag("count")] | Annotated[dict[Language, _Count], Tag("per-language")],
    Discriminator(lambda v: "per-language" if isinstance(v, dict) else "count"),
]
SPLITS: tuple[str, ...] = ("train", "dev", "test")
#: The test splits of a synthetic corpus read from a prompt pool.
POOL_TEST_SPLITS: tuple[str, ...] = ("test_seen", "test_unseen")



class ConfigError(DualasrError, ValueError):
    """A configuration file that cannot be used; the message names file and key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SynthConfig(_Section):
    """``dualasr synth``: the embedded synthetic L2 corpus."""

    languages: list[Language] = ["en", "ko"]
    # Utterances per split, for every language or per language
    # ({train: {en: 6000, ko: 3000}}). Without ``prompts`` every utterance reads
    # its own sentence (splits train, dev, test; test sentences are disjoint
    # from train and dev ones). With ``prompts`` the test splits are
    # ``test_seen`` and/or ``test_unseen`` instead of ``test`` (see ``prompts``).
    sentences: dict[Split, _SentenceCount] = {"train": 3000, "dev": 300, "test": 400}
    # The read-speech regime of AI Hub's read-aloud sets and L2-ARCTIC: distinct
    # meaning sentences (prompts) the ``sentences.train`` training utterances
    # are read from, for every language or per language (e.g. 6,000 utterances
    # over 1,500 prompts: each prompt read about 4 times). Every reading has its
    # own voice, rate, noise and its own L2 errors drawn for its ED bin, so one
    # prompt read twice usually gives two surfaces. ``test_seen``: training
    # prompts read by held-out voices; ``test_unseen``: sentences never in
    # training, one reading each. Unset (null): one sentence per utterance.
    prompts: _SentenceCount | None = None
    # With ``prompts``: what the dev split (model selection: dev loss picks the
    # averaged checkpoints) reads, ``seen`` = training prompts like test_seen,
    # ``unseen`` = new sentences like test_unseen. Unseen favours no memorised
    # prompt, so it is the default.
    dev_regime: Literal["seen", "unseen"] = "unseen"
    # Share of utterances per ED bin (0, 1-3, 4-10, >10), per language.
    ed_shares: dict[Language, list[float]] = Field(default_factory=lambda: dict(REFERENCE_ED_SHARES))
    # Voices (ids from `dualasr synth --list-voices`) held out of training:
    # dev and test speakers are unseen in training. Every other installed voice
    # of the language is a training voice. The ``test`` voices read every test
    # split (test, or test_seen and test_unseen).
    heldout_voices: dict[Language, dict[Literal["dev", "test"], list[str]]] = {}
    rate: tuple[float, float] = (0.85, 1.2)  # speaking-rate factor range
    pitch: tuple[float, float] = (0.85, 1.2)  # pitch factor range
    snr_db: tuple[float, float] = (15.0, 40.0)  # added white/pink noise
    # Speed perturbation by resampling (Ko et al., 2015, as in Kaldi recipes):
    # tempo, F0 and every formant scale by the factor, so each utterance speaks
    # with a differently sized vocal tract. (1, 1) = off.
    speed: tuple[float, float] = (1.0, 1.0)
    noise_prob: float = Field(0.7, ge=0.0, le=1.0)
    sample_rate: int = 16000
    workers: int = Field(0, ge=0)  # 0 = one per CPU core

    def sentence_counts(self, language: str) -> dict[str, int]:
        """Utterances per split for ``language``, in :meth:`splits` order."""
        return {s: n[language] if isinstance(n := self.sentences[s], dict) else n for s in self.splits()}

    def prompt_count(self, language: str) -> int | None:
        """Distinct training prompts of ``language``; None without a prompt pool."""
        return self.prompts[language] if isinstance(self.prompts, dict) else self.prompts

    def splits(self) -> tuple[str, ...]:
        """The splits the corpus has: train, dev, then its test splits."""
        tests = POOL_TEST_SPLITS if self.prompts is not None else ("test",)
        return ("train", "dev", *(s for s in tests if s in self.sentences))

    @field_validator("ed_shares")
    @classmethod
    def _shares(cls, v: dict[str, list[float]]) -> dict[str, list[float]]:
        for lang, shares in v.items():
            # Published shares are rounded (English sums to 1.001): allow 1 %.
            if len(shares) != 4 or any(s < 0 for s in shares) or abs(sum(shares) - 1) > 0.01:
                raise ValueError(f"{lang}: need 4 non-negative shares summing to 1, got {shares}")
        return {lang: [s / sum(shares) for s in shares] for lang, shares in v.items()}

    @model_validator(mode="after")
    def _ranges(self) -> SynthConfig:
        for name in ("rate", "pitch", "snr_db", "speed"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: lower bound {lo} > upper bound {hi}")
        if self.prompts is None:
            required, allowed = SPLITS, SPLITS
            why = "give train, dev and test"
        else:
            required, allowed = ("train", "dev"), ("train", "dev", *POOL_TEST_SPLITS)
            why = "give train, dev and test_seen and/or test_unseen"
        for split in self.sentences:
            if split not in allowed:
                pool = "without" if self.prompts is None else "with"
                raise ValueError(f"sentences.{split}: not a split of a corpus {pool} synth.prompts ({why})")
        if self.prompts is not None and not any(s in self.sentences for s in POOL_TEST_SPLITS):
            raise ValueError(f"sentences: no test split ({why})")
        for split in required:
            if split not in self.sentences:
                raise ValueError(f"sentences.{split}: missing ({why})")
        for split, n in self.sentences.items():
            if isinstance(n, dict):
                for lang in self.languages:
                    if lang not in n:
                        raise ValueError(f"sentences.{split}.{lang}: missing (synth.languages has {lang})")
        if self.prompts is not None:
            for lang in self.languages:
                if isinstance(self.prompts, dict) and lang not in self.prompts:
                    raise ValueError(f"prompts.{lang}: missing (synth.languages has {lang})")
                p, n = self.prompt_count(lang), self.sentence_counts(lang)["train"]
                if not 1 <= p <= n:
                    raise ValueError(
                        f"prompts.{lang}: {p} prompts for {n} training utterances (sentences.train); "
                        "each prompt is read at least once, so 1 <= prompts <= sentences.train"
                    )
        if not 0.5 <= self.speed[0] <= self.speed[1] <= 2.0:
            raise ValueError(f"speed: factors must lie in [0.5, 2], got {list(self.speed)}")
        return self


class TextConfig(_Section):
    """Tokenisation and divergence units."""

    korean_unit: Literal["char", "jamo"] = "char"  # Hangul syllables or jamo
    divergence_unit: Literal["char", "word"] = "char"
    # Sentencepiece subword pieces instead of characters / jamo for some outputs:
    # language -> output -> vocabulary size (an upper bound), e.g. {en: {meaning: 300}}.
    # Phone-level outputs stay phones. CER is scored on characters either way.
    subword: dict[Language, dict[Literal["surface", "meaning"], Annotated[int, Field(ge=8)]]] = {}


class DataConfig(_Section):
    """Where the study's corpus comes from."""

    # Prepared corpora (``dualasr prepare`` output: a directory with
    # cuts_{train,dev,test}.jsonl.gz) per language. Empty: the synthetic corpus
    # of the ``synth`` section. Relative paths are relative to the working directory.
    corpora: dict[Language, Path] = {}
    # A cut a stage cannot use (audio unreadable when features are computed, or
    # longer than max_utterance_seconds) stops the stage with an error naming it;
    # true leaves such cuts out instead, counted on the console and listed in a
    # ``.skipped.tsv`` beside the stage's output (``--skip-invalid`` sets it).
    skip_invalid: bool = False
    # Longest utterance trained on or decoded, in seconds. Read L2 sentences
    # last 2-15 s (L2-ARCTIC, speechocean762, AI Hub read-aloud sets); 30 s
    # leaves room for slow readers while the encoder's self-attention, quadratic
    # in length, stays small (a 10-minute file would need gigabytes). Longer
    # recordings need segmenting first.
    max_utterance_seconds: float = Field(30.0, gt=0)

    def usable_cut_rule(self) -> dict:
        """The settings that decide which cuts a stage uses: part of the inputs
        a trained model or decoded output is fingerprinted with."""
        return {"skip_invalid": self.skip_invalid, "max_utterance_seconds": self.max_utterance_seconds}


#: Aggregators of the shared encoder's per-output gradients (``train.mtl.aggregator``),
#: by their torchjd names; dualasr.train.mtl maps them to ``torchjd.aggregation``.
Aggregator = Literal["upgrad", "pcgrad", "mgda", "cagrad", "alignedmtl", "imtlg", "gradvac", "mean", "sum"]
#: Loss weightings (``train.mtl.weighting``), see dualasr.train.mtl.
Weighting = Literal["uncertainty", "dwa", "gradnorm", "famo"]


class MTLConfig(_Section):
    """``train.mtl``: how a DO model turns its per-output losses into gradients
    (dualasr.train.mtl and docs/methods.md). Leaving both out is the plain sum."""

    # Jacobian of the per-output losses w.r.t. the shared encoder, aggregated by torchjd.
    aggregator: Aggregator | None = None
    # Per-output loss weights that change during training.
    weighting: Weighting | None = None
    cagrad_c: float = Field(0.5, ge=0)  # CAGrad's radius c (Liu et al. 2021 use 0.4-0.5)
    dwa_temperature: float = Field(2.0, gt=0)  # DWA's T (Liu et al. 2019: 2)
    gradnorm_alpha: float = Field(1.5, ge=0)  # GradNorm's asymmetry alpha (Chen et al. 2018: 1.5 for NYUv2)
    # Learning rate of the weights GradNorm and FAMO learn beside the model (Adam);
    # FAMO's paper uses 0.025.
    weight_lr: float = Field(0.025, gt=0)
    # FAMO's weight decay on its logits (the paper's gamma; its Algorithm 2 and LibMTL: 1e-3).
    famo_gamma: float = Field(1e-3, ge=0)

    @model_validator(mode="after")
    def _one_method(self) -> MTLConfig:
        if self.aggregator is not None and self.weighting is not None:
            raise ValueError(
                f"aggregator {self.aggregator!r} and weighting {self.weighting!r}: choose one "
                "(an aggregator sets the per-output weights of the shared gradient itself)"
            )
        return self


class TrainConfig(_Section):
    """``dualasr train``: optimisation and batching (one set for every model)."""

    epochs: int = Field(30, ge=1)
    max_duration: float = Field(200.0, gt=0)  # seconds of audio per batch (per rank)
    num_buckets: int = Field(10, ge=1)
    lr: float = Field(1e-3, gt=0)  # peak learning rate, reached after warmup
    warmup_steps: int = Field(1000, ge=0)
    # After warmup: ``noam`` decays as 1/sqrt(step) (ESPnet's WarmupLR), open-ended;
    # ``linear`` decays to 0 at the last step of the last epoch (for a fixed budget).
    schedule: Literal["noam", "linear"] = "noam"
    weight_decay: float = Field(1e-3, ge=0)
    grad_clip: float = Field(5.0, gt=0)
    accum_grad: int = Field(1, ge=1)
    average_best: int = Field(5, ge=1)  # checkpoints averaged, ranked by dev loss
    amp: bool = True  # mixed precision on CUDA (ignored on CPU/MPS)
    num_workers: int = Field(0, ge=0)  # DataLoader workers
    log_every: int = Field(25, ge=1)  # steps between metric rows
    # Gradient aggregation or loss weighting, DO models only (MTLConfig); None: the plain summed loss.
    mtl: MTLConfig | None = None

    @model_serializer(mode="wrap")
    def _without_unset_mtl(self, handler):
        # Runs trained before train.mtl existed are fingerprinted and checkpointed
        # without the key: leaving it out when unset keeps them reusable and resumable.
        out = handler(self)
        if self.mtl is None:
            out.pop("mtl", None)
        return out


class DecodeConfig(_Section):
    """``dualasr decode``: joint CTC/attention beam search."""

    beam: int = Field(5, ge=1)
    ctc_weight: float = Field(0.3, ge=0, le=1)
    length_penalty: float | None = None  # None: divide by length (length normalisation)
    max_len_ratio: float = Field(1.0, gt=0)  # max tokens per encoder frame
    # A batch holds at most batch_size utterances and max_duration seconds of
    # padded audio (utterances x the longest one), so one long utterance does
    # not pad fifteen short ones into a huge batch.
    batch_size: int = Field(16, ge=1)
    max_duration: float = Field(200.0, gt=0)
    # Shallow fusion with a token LSTM LM per output (``lm`` section; the study
    # trains one per language and output with a weight here): output -> weight.
    lm_weight: dict[Literal["surface", "meaning"], Annotated[float, Field(ge=0)]] = {}


#: A variant name: letters, digits, ``_`` and ``-`` (it names a run directory).
_VARIANT_NAME = re.compile(r"[A-Za-z0-9_-]+")


class Variant(_Section):
    """One model of a study, ``study.models.<name>``: its overrides of the shared
    ``model`` and ``train`` sections (see :func:`model_config`, :func:`train_config`)."""

    # sso | mso | do. Left out, the name, for a variant named sso, mso or do;
    # any other name must give it.
    mode: Mode | None = None
    # How tables, figures and the report show it; default SSO / MSO / DO for
    # the reference models, else the name (dualasr.layout.default_label).
    label: str | None = Field(None, min_length=1)
    # Loss weights ctc_<output> / att_<output>, over the mode's reference ones
    # (SO 0.2 CTC + 0.8 att; DO 0.2 CTC_s + 0.5 att_s + 0.3 att_m).
    weights: dict[str, float] | None = None
    # Deep-merged over the shared sections, e.g. {encoder: {task_specific_layers: 2}};
    # validated as a whole model / train section at load.
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}


def _default_models() -> dict[str, Variant]:
    return {name: Variant() for name in MODE_OUTPUTS}


class StudyConfig(_Section):
    """Which models ``dualasr study`` trains, and with which seeds."""

    # Variant name -> Variant; a list of names [sso, mso, do] stands for
    # {sso: {}, mso: {}, do: {}}.
    models: dict[str, Variant] = Field(default_factory=_default_models)
    seeds: list[int] = [0]
    # Models trained at once, each in its own process with cores // jobs threads
    # (language x seed x model jobs, longest first). On a 2-core CPU two 1-thread
    # processes train more audio per second than one 2-thread process; "auto":
    # one job per core the process may use (never more than there are jobs).
    jobs: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    # Epochs per language, overriding train.epochs for that language's models
    # (corpora differ in size and difficulty; SO and DO of a language still match).
    # A variant's own train.epochs overrides both.
    epochs: dict[Language, Annotated[int, Field(ge=1)]] = {}

    @field_validator("jobs", mode="before")
    @classmethod
    def _jobs(cls, v: Any) -> Any:
        # One clear message instead of one per member of the union.
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError(f"expected a number of jobs >= 1 or 'auto', got {v!r}")

    @field_validator("models", mode="before")
    @classmethod
    def _names_to_variants(cls, v):
        if not isinstance(v, list):
            return v
        twice = sorted({n for n in v if isinstance(n, str) and v.count(n) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} given twice")
        return {n: {} for n in v}

    @field_validator("models")
    @classmethod
    def _names(cls, v: dict[str, Variant]) -> dict[str, Variant]:
        if not v:
            raise ValueError("no model to train: name at least one")
        for name in v:
            if not _VARIANT_NAME.fullmatch(name):
                raise ValueError(f"{name!r}: a variant name holds letters, digits, _ and - only")
        return v


class Config(_Section):
    seed: int = 0
    synth: SynthConfig = SynthConfig()
    text: TextConfig = TextConfig()
    data: DataConfig = DataConfig()
    # Architecture shared by every model of the study; mode, loss weights and
    # any other override are set per variant (study.models).
    model: ModelConfig = Field(default_factory=lambda: ModelConfig(**PRESETS["demo"]))
    train: TrainConfig = TrainConfig()
    decode: DecodeConfig = DecodeConfig()
    lm: LMConfig = LMConfig()
    study: StudyConfig = StudyConfig()

    @model_validator(mode="before")
    @classmethod
    def _no_per_model_keys(cls, data):
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            for key in ("mode", "weights"):
                if key in data["model"]:
                    raise ValueError(f"model.{key}: set per variant, as study.models.<name>.{key}")
        if isinstance(data, dict) and isinstance(data.get("study"), dict) and "weights" in data["study"]:
            raise ValueError(
                "study.weights: loss weights moved to the variants: write study.weights.<name> as "
                "study.models.<name>.weights, e.g. study.models: {sso: {}, mso: {weights: "
                "{ctc_meaning: 0.3, att_meaning: 0.7}}, do: {}}"
            )
        return data

    @model_validator(mode="after")
    def _variants(self) -> Config:
        # Every variant's merged sections are built once here, so a bad override
        # fails at load, naming the variant and key, not when its job starts.
        errors = []
        for name in self.study.models:
            try:
                model_config(self, name)
                train_config(self, None, name)
            except ConfigError as e:
                errors.append(str(e))
        if errors:
            raise ValueError("\n".join(errors))
        return self


def _merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, recursively for nested mappings."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def _variant_errors(e: ValidationError, name: str, section: str) -> ConfigError:
    """The errors of variant ``name``'s merged ``section``, one line each, keyed
    ``study.models.<name>.<section>.<key>`` (``study.models.<name>`` for an
    error of the whole section, such as weights not valid for the mode)."""
    lines = []
    for err in e.errors():
        key = ".".join([f"study.models.{name}", *((section, *map(str, err["loc"])) if err["loc"] else ())])
        lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
    return ConfigError("\n".join(lines))


def variant(config: Config, name: str) -> Variant:
    """The variant ``name`` of ``study.models``, its mode filled in."""
    v = config.study.models.get(name)
    if v is None:
        raise ConfigError(f"study.models: no variant {name!r} (variants: {', '.join(config.study.models)})")
    if v.mode is not None:
        return v
    if name not in MODE_OUTPUTS:
        raise ConfigError(f"study.models.{name}.mode: required (sso, mso or do) for a variant not named after its mode")
    return v.model_copy(update={"mode": name})


def model_config(config: Config, name: str) -> ModelConfig:
    """The validated architecture of variant ``name``: the shared ``model``
    section with the variant's ``model`` overrides deep-merged in, its mode and
    its loss weights. Errors name ``study.models.<name>`` and the key."""
    v = variant(config, name)
    for key in ("mode", "weights"):
        if key in v.model:
            raise ConfigError(f"study.models.{name}.model.{key}: set as study.models.{name}.{key}")
    fields = _merged(config.model.model_dump(exclude={"mode", "weights"}), v.model)
    try:
        return ModelConfig(mode=v.mode, weights=v.weights, **fields)
    except ValidationError as e:
        raise _variant_errors(e, name, "model") from None


def train_config(config: Config, lang: str | None, name: str) -> TrainConfig:
    """The validated training settings of variant ``name`` on language ``lang``:
    ``train``, with ``study.epochs.<lang>`` where set, then the variant's
    ``train`` overrides (``lang`` None: no per-language epochs)."""
    fields = config.train.model_dump()
    if lang in config.study.epochs:
        fields["epochs"] = config.study.epochs[lang]
    v = variant(config, name)
    try:
        train = TrainConfig(**{**fields, **v.train})
    except ValidationError as e:
        raise _variant_errors(e, name, "train") from None
    if train.mtl is not None and v.mode != "do":
        where = f"study.models.{name}.train.mtl" if "mtl" in v.train else "train.mtl"
        raise ConfigError(f"{where}: gradient aggregation and loss weighting need the two outputs of a "
                          f"DO model; {name} is {v.mode.upper()} (set mtl per DO variant)")
    if train.mtl is not None and train.mtl.aggregator is not None:
        _check_aggregable(model_config(config, name), f"study.models.{name}.train.mtl.aggregator")
    return train


def _check_aggregable(model: ModelConfig, where: str) -> None:
    """torchjd's ``mtl_backward`` needs every parameter to be either shared (reached
    through the shared features) or one objective's own. A separation penalty
    reaches both outputs' branches, and self-conditioning feeds the surface CTC
    head into the shared upper blocks: neither fits, so they are refused."""
    if model.separation is not None:
        raise ConfigError(f"{where}: gradient aggregation with model.separation: the penalty depends on both "
                          "outputs' own parameters; use loss weighting or no aggregation with it")
    if model.hierarchy is not None and model.hierarchy.self_condition:
        raise ConfigError(f"{where}: gradient aggregation with hierarchy.self_condition: the surface CTC head "
                          "then feeds the shared blocks; use a hierarchy without self-conditioning")


def model_label(config: Config, name: str) -> str:
    """How tables, figures and the report show variant ``name``."""
    return variant(config, name).label or default_label(name)


def model_seed(seed: int, name: str) -> int:
    """The training seed of variant ``name`` in study seed ``seed``: distinct per
    variant, so SSO, MSO and DO start from independent random weights. With one
    shared seed their same-shaped parts (e.g. the SSO and DO surface decoders)
    would start identical, and layer-wise CKA between them would measure the
    shared start, not what training made of it. Stable across runs (crc32, not
    Python's salted hash). ``dualasr train`` and ``dualasr study`` both train
    from it, so a model trained by hand equals the study's."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the
    last one silently, so a setting could be overridden unseen)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may repeat keys on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config; errors name the file and the key."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as e:  # a directory, no permission
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    try:
        raw = yaml.load(data.decode("utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader: no objects built
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if raw is None:
        # An empty file is more likely a mistake (wrong file, failed copy) than
        # a request for every default; `{}` asks for the defaults explicitly.
        raise ConfigError(f"{path}: config file is empty (write {{}} to use every default)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            # A message of several lines (every bad variant) gives a line per error.
            for msg in err["msg"].removeprefix("Value error, ").splitlines():
                lines.append(f"{path}: {key}: {msg}" if key else f"{path}: {msg}")
        raise ConfigError("\n".join(lines)) from None
