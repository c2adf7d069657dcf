"""Validated model configuration and the three size presets (smoke, demo, paper).

The paper preset follows the reference study's description (ESPnet-style
Conformer, d=256, 4 heads, FFN 1024, kernel 31, 12 blocks; 8-block d=256
decoders). With FFN 1024 in both encoder and decoders it lands at ~30-31 M
parameters for an SO model and ~38-40 M for DO (character vocabularies of 100
English / 1,500 Korean symbols); a 2048-unit decoder FFN would overshoot DO
(~47 M). See ``tests/model/test_param_counts.py`` for the exact counts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

Mode = Literal["sso", "mso", "do"]

#: Outputs of each mode, in the order their losses are reported.
MODE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "sso": ("surface",),
    "mso": ("meaning",),
    "do": ("surface", "meaning"),
}

#: Reference loss weights (Cho & Kim 2026): SO 0.2 CTC + 0.8 att;
#: DO 0.2 CTC_surface + 0.5 att_surface + 0.3 att_meaning, no meaning CTC.
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "sso": {"ctc_surface": 0.2, "att_surface": 0.8},
    "mso": {"ctc_meaning": 0.2, "att_meaning": 0.8},
    "do": {"ctc_surface": 0.2, "att_surface": 0.5, "att_meaning": 0.3, "ctc_meaning": 0.0},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpecAugConfig(_Strict):
    """SpecAugment (Park et al. 2019), applied only in training mode.

    Defaults are ESPnet's LibriSpeech Conformer recipe: 2 frequency masks of
    width 0-27 bins, 2 time masks of width 0-40 frames, time warp window 5.
    """

    enabled: bool = True
    freq_masks: int = Field(2, ge=0)
    freq_width: int = Field(27, ge=0)
    time_masks: int = Field(2, ge=0)
    time_width: int = Field(40, ge=0)
    time_warp: int = Field(5, ge=0, description="warp window in frames; 0 disables warping")


class EncoderConfig(_Strict):
    layers: int = Field(12, ge=1)
    heads: int = Field(4, ge=1)
    ffn_dim: int = Field(1024, ge=1)
    kernel: int = Field(31, ge=1, description="depthwise convolution kernel (odd)")
    dropout: float = Field(0.1, ge=0, lt=1)
    attn_dropout: float = Field(0.1, ge=0, lt=1)
    conv_norm: Literal["batch", "layer"] = "batch"
    task_specific_layers: int = Field(
        0, ge=0, description="top encoder blocks duplicated per output (shared trunk below)"
    )

    @model_validator(mode="after")
    def _check(self) -> EncoderConfig:
        if self.kernel % 2 == 0:
            raise ValueError(f"encoder.kernel must be odd, got {self.kernel}")
        if self.task_specific_layers > self.layers:
            raise ValueError(
                f"encoder.task_specific_layers={self.task_specific_layers} exceeds "
                f"encoder.layers={self.layers}"
            )
        return self


class DecoderConfig(_Strict):
    layers: int = Field(8, ge=1)
    heads: int = Field(4, ge=1)
    ffn_dim: int = Field(1024, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    attn_dropout: float = Field(0.1, ge=0, lt=1)


class HierarchyConfig(_Strict):
    """Hierarchical outputs: the surface CTC (and, with ``surface_decoder``, the
    surface decoder) reads encoder block ``surface_layer`` (1-based), the
    meaning output the top block, as intermediate CTC (Lee & Watanabe 2021,
    ESPnet's ``interctc_layer_idx``) used as the lower task of a hierarchy.

    ``self_condition``: self-conditioned CTC (Nozaki & Komatsu 2021, ESPnet's
    ``interctc_use_conditioning``): the blocks above ``surface_layer`` read
    ``h_k + Linear(softmax(CTC_surface(h_k)))`` instead of ``h_k``.
    """

    surface_layer: int = Field(ge=1, description="1-based encoder block the surface CTC reads")
    surface_decoder: bool = Field(False, description="the surface decoder reads the same block (else the top)")
    self_condition: bool = Field(False, description="condition the upper blocks on the surface CTC posteriors")


class AdapterConfig(_Strict):
    """Per-output bottleneck adapters (Houlsby et al. 2019) after each of the top
    ``layers`` encoder blocks: ``x + W_up act(W_down x)``, ``W_down`` ``d -> dim``,
    ``W_up`` ``dim -> d`` zero-initialised so the model starts as the plain one."""

    layers: int = Field(ge=1, description="top encoder blocks followed by a per-output adapter")
    dim: int = Field(32, ge=1, description="bottleneck width")
    kind: Literal["bottleneck"] = "bottleneck"


class SeparationConfig(_Strict):
    """A representation separation penalty between the surface and meaning
    encoder outputs, added to the loss as ``weight * P``
    (:func:`dualasr.model.similarity.separation_penalty`).

    kind: ``orthogonality`` (Bousmalis et al. 2016 difference loss on centred,
    unit-Frobenius-norm features, in [0, 1]) or ``cka`` (debiased linear CKA,
    Kornblith et al. 2019 with Song et al. 2012's HSIC_1).
    weight: lambda, required: P is at most 1 while each output's loss is a sum
    over its tokens per utterance, so a useful lambda depends on the corpus.
    """

    kind: Literal["orthogonality", "cka"]
    weight: float = Field(gt=0)


class PretrainedConfig(_Strict):
    """A pretrained speech model from Hugging Face ``transformers``
    (:mod:`dualasr.model.pretrained`), read from a local directory or the local
    hub cache, never downloaded at run time.

    ``path``: a directory written by ``save_pretrained`` (``config.json``, the
    weights, ``preprocessor_config.json``; for ``whole`` also the tokenizer
    files), or a hub id such as ``openai/whisper-base`` already in the local
    cache. ``whole``: fine-tune the whole Whisper model (its own decoder and
    tokenizer) as a single-output baseline (the reference study's Whisper SO
    rows); else its encoder (Whisper, wav2vec2, HuBERT, WavLM) replaces the
    Conformer under dualasr's CTC heads and decoders. ``train_layers``: None
    fine-tunes every layer, ``n`` only the top ``n`` transformer layers (0
    freezes the encoder); wav2vec2's convolutional feature encoder is always
    frozen, as in its fine-tuning recipe. ``layer_sum``: the heads read a
    learnt softmax-weighted sum of every layer's output (SUPERB, Yang et al.
    2021) instead of the top layer. ``gradient_checkpointing``: recompute
    activations in backward (on GPU only).
    """

    path: str = Field(min_length=1)
    whole: bool = False
    train_layers: int | None = Field(None, ge=0)
    layer_sum: bool = False
    gradient_checkpointing: bool = True


class ModelConfig(_Strict):
    """Everything that fixes the architecture and the training loss.

    ``weights`` keys are ``ctc_<output>`` / ``att_<output>``; left out, they take
    the reference values for ``mode`` (:data:`DEFAULT_WEIGHTS`). A CTC head
    exists only for an output whose CTC weight is > 0; every output of the mode
    has an attention decoder, so its attention weight must be > 0.
    """

    mode: Mode = "do"
    n_mels: int = Field(80, ge=1)
    d_model: int = Field(256, ge=1)
    # Conv2d subsampling channels; None = d_model (ESPnet). Fewer is much cheaper on CPU.
    subsampling_channels: int | None = Field(None, ge=1)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    specaug: SpecAugConfig = Field(default_factory=SpecAugConfig)
    # Speaker and channel normalisation, for held-out voices (see Frontend).
    utterance_cmn: bool = Field(False, description="subtract each utterance's own mean per mel bin after global CMVN")
    vtlp: float = Field(0.0, ge=0, lt=0.5, description="training-time mel-axis warp by a factor in [1-vtlp, 1+vtlp]")
    weights: dict[str, float] | None = None
    hierarchy: HierarchyConfig | None = None
    adapters: AdapterConfig | None = None
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    separation: SeparationConfig | None = None
    pretrained: PretrainedConfig | None = None

    @model_serializer(mode="wrap")
    def _without_unset_pretrained(self, handler):
        # Runs trained before model.pretrained existed are fingerprinted and checkpointed
        # without the key: leaving it out when unset keeps them reusable and resumable.
        out = handler(self)
        if self.pretrained is None:
            out.pop("pretrained", None)
        return out

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        for name, heads in (("encoder", self.encoder.heads), ("decoder", self.decoder.heads)):
            if self.d_model % heads:
                raise ValueError(f"d_model={self.d_model} not divisible by {name}.heads={heads}")
        outputs = MODE_OUTPUTS[self.mode]
        allowed = {f"{kind}_{o}" for o in outputs for kind in ("ctc", "att")}
        weights = {**DEFAULT_WEIGHTS[self.mode], **(self.weights or {})}
        unknown = sorted(set(weights) - allowed)
        if unknown:
            raise ValueError(
                f"weights {unknown} not valid for mode {self.mode!r}; allowed: {sorted(allowed)}"
            )
        for key, w in weights.items():
            if w < 0:
                raise ValueError(f"weights.{key} must be >= 0, got {w}")
        for o in outputs:
            if weights.get(f"att_{o}", 0.0) <= 0:
                raise ValueError(f"weights.att_{o} must be > 0: every output has a decoder")
        self.weights = weights
        self._check_methods()
        self._check_separation()
        self._check_pretrained()
        return self

    def _check_pretrained(self) -> None:
        """A whole pretrained model has one output, its own decoder and none of
        dualasr's encoder methods; a pretrained encoder takes them all, and reads either a layer sum or per-output top layers."""
        p = self.pretrained
        if p is None:
            return
        if p.whole:
            if self.mode == "do":
                raise ValueError("pretrained.whole is a single-output baseline: mode must be sso or mso, got 'do'")
            if p.layer_sum or self.encoder.task_specific_layers or self.adapters or self.hierarchy or self.separation:
                raise ValueError("pretrained.whole is the whole Whisper model: no layer_sum, task-specific layers, "
                                 "adapters, hierarchy or separation")  # fmt: skip
        if p.layer_sum and (self.encoder.task_specific_layers or self.adapters):
            raise ValueError("pretrained.layer_sum with encoder.task_specific_layers or adapters: choose one")

    def _check_methods(self) -> None:
        """The hierarchy and adapter sections against the encoder and the mode.
        Each refuses task-specific blocks (and they refuse each other): the
        combinations would make "the layer output o reads" ambiguous, and each
        method is meant to be compared on its own."""
        layers, split = self.encoder.layers, self.encoder.task_specific_layers
        if self.hierarchy is not None:
            k = self.hierarchy.surface_layer
            if "surface" not in self.outputs:
                raise ValueError(f"hierarchy needs a surface output; mode {self.mode!r} has none")
            if not 1 <= k < layers:
                raise ValueError(f"hierarchy.surface_layer={k} must be in 1..{layers - 1} (encoder.layers={layers})")
            if split:
                raise ValueError(
                    f"hierarchy with encoder.task_specific_layers={split}: the surface output would read a "
                    "block of the shared trunk or of its own branch; use one of the two"
                )
            if self.weights.get("ctc_surface", 0.0) <= 0:
                raise ValueError("hierarchy needs weights.ctc_surface > 0: the surface CTC is the intermediate head")
        if self.adapters is not None:
            n = self.adapters.layers
            if n > layers:
                raise ValueError(f"adapters.layers={n} exceeds encoder.layers={layers}")
            if split:
                raise ValueError(
                    f"adapters with encoder.task_specific_layers={split}: per-output blocks need no adapters"
                )
            if self.hierarchy is not None:
                raise ValueError("adapters with hierarchy: choose one of the two sections")


    def _check_separation(self) -> None:
        """A penalty between two outputs needs two outputs with their own encoder
        outputs: task-specific blocks, per-output adapters, or a hierarchy whose
        surface decoder reads its own block. The model also refuses, at every
        step, surface and meaning encoder outputs that are one tensor
        (:meth:`dualasr.model.asr.DualASR.task_losses`)."""
        if self.separation is None:
            return
        if self.mode != "do":
            raise ValueError(f"separation needs mode 'do' (two outputs), got mode {self.mode!r}")
        own = (
            self.encoder.task_specific_layers >= 1 or self.adapters is not None
            or (self.hierarchy is not None and self.hierarchy.surface_decoder)
        )  # fmt: skip
        if not own:
            raise ValueError(
                "separation needs encoder.task_specific_layers >= 1, adapters, or hierarchy.surface_decoder: "
                "otherwise both outputs read the same encoder output and the penalty is constant"
            )

    @property
    def outputs(self) -> tuple[str, ...]:
        return MODE_OUTPUTS[self.mode]


#: Size presets. ``smoke``: seconds per step, for tests and CI; ``demo``: trains
#: on a CPU in minutes to an hour; ``paper``: the reference study's size.
PRESETS: dict[str, dict] = {
    "smoke": {
        "d_model": 64,
        "encoder": {"layers": 2, "heads": 2, "ffn_dim": 128, "kernel": 7},
        "decoder": {"layers": 1, "heads": 2, "ffn_dim": 128},
    },
    "demo": {
        "d_model": 144,
        "encoder": {"layers": 6, "heads": 4, "ffn_dim": 576, "kernel": 15},
        "decoder": {"layers": 2, "heads": 4, "ffn_dim": 576},
    },
    "paper": {
        "d_model": 256,
        "encoder": {"layers": 12, "heads": 4, "ffn_dim": 1024, "kernel": 31},
        "decoder": {"layers": 8, "heads": 4, "ffn_dim": 1024},
    },
}


def preset(name: str, mode: Mode = "do", **overrides) -> ModelConfig:
    """``ModelConfig`` for a named size; ``overrides`` are top-level fields
    (nested sections replace the preset's section key by key)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    fields = {k: dict(v) if isinstance(v, dict) else v for k, v in PRESETS[name].items()}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(fields.get(key), dict):
            fields[key] = {**fields[key], **value}
        else:
            fields[key] = value
    return ModelConfig(mode=mode, **fields)


class LMConfig(_Strict):
    """Size and training of the per-output language models (``lm`` section)."""

    embed: int = Field(128, ge=1)
    hidden: int = Field(256, ge=1)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    epochs: int = Field(10, ge=1)
    lr: float = Field(2e-3, gt=0)
    batch_size: int = Field(64, ge=1)  # sentences per step
