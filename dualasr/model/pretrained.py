"""Pretrained speech models from Hugging Face ``transformers`` (the optional
extra ``pip install 'dualasr[pretrained]'``), read from a local directory or
the local hub cache only: nothing is downloaded at run time.

Two uses (:class:`~dualasr.model.config.PretrainedConfig`):

* :class:`PretrainedEncoder`: the encoder of a Whisper, wav2vec2, HuBERT or
  WavLM model in place of the Conformer, under dualasr's CTC heads and
  attention decoders (SSO, MSO, DO and its variants: task-specific top layers,
  adapters, hierarchy with or without self-conditioning). It reads 16 kHz waveforms ``(batch, samples)``; the
  model's own feature extractor (``preprocessor_config.json``) turns them into
  its input: Whisper's log-mel padded to the model's full window (30 s for the
  released models: the encoder's positional embeddings have exactly that many
  positions, so shorter input would change the model), wav2vec2's normalised
  waveform.
* :class:`WhisperSO`: a whole Whisper model, its decoder and tokenizer
  included, fine-tuned on one output (the reference study's Whisper SO rows).
  Batches carry the same normalised target text as every other model (as
  dualasr token ids), which it turns into Whisper's tokens; its hypotheses come
  back as dualasr token ids, so decode, score and the tables treat it as any
  other model.

A pretrained directory's identity (:func:`directory_identity`) goes into the
training fingerprint.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dualasr.errors import DualasrError
from dualasr.text.tokenizer import Tokenizer

from .config import AdapterConfig, HierarchyConfig, PretrainedConfig
from .conformer import BottleneckAdapter, EncoderOutput
from .layers import lengths_to_mask

SAMPLE_RATE = 16000
#: ``config.model_type`` of the models dualasr reads, and their feature extractor.
FAMILIES = {
    "whisper": "WhisperFeatureExtractor",
    "wav2vec2": "Wav2Vec2FeatureExtractor",
    "hubert": "Wav2Vec2FeatureExtractor",
    "wavlm": "Wav2Vec2FeatureExtractor",
}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
INSTALL = "pip install 'dualasr[pretrained]'"


class PretrainedError(DualasrError):
    """A pretrained model that cannot be used (missing, of another kind, or
    the extra that reads it not installed)."""


def require_transformers(what: str = "pretrained models") -> None:
    """Raise :class:`PretrainedError` naming ``what`` and the install command
    when ``transformers`` is missing."""
    if importlib.util.find_spec("transformers") is None:
        raise PretrainedError(f"{what} need the optional extra 'pretrained' (Hugging Face transformers), "
                              f"which is not installed: {INSTALL}")  # fmt: skip


def fetch_hint(name: str) -> str:
    return (f"on a machine with network, `hf download {name} --local-dir DIR` (huggingface_hub's CLI), "
            "copy DIR here and set pretrained.path: DIR")  # fmt: skip


def resolve_directory(path: str) -> Path:
    """``path`` as a directory: itself, or a hub id's snapshot in the local
    cache (``HF_HOME``); never downloads."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p
    require_transformers()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(path, local_files_only=True))
    except Exception:  # not an id, or not in the cache: both mean "fetch it first"
        raise PretrainedError(f"pretrained.path {path}: not a directory, nor a model in the local Hugging Face "
                              f"cache; {fetch_hint(path)}") from None  # fmt: skip


def directory_identity(path: str) -> str:
    """``"sha256:<hex>"`` over the names and bytes of the directory's config,
    feature extractor, tokenizer and weight files: what the fingerprint of a
    run trained from it records."""
    d = resolve_directory(path)
    h = hashlib.sha256()
    for f in sorted(d.iterdir()):
        if f.is_file() and (f.suffix in (".json", ".txt", ".safetensors", ".bin")):
            h.update(f"{f.name}|".encode())
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    h.update(chunk)
    return f"sha256:{h.hexdigest()}"


@dataclass
class Loaded:
    """What a pretrained directory holds, checked: the model (weights loaded
    or random, see :func:`load_pretrained`), its feature extractor, its
    tokenizer (``whole`` only), its family (``config.model_type``)."""

    model: nn.Module
    feature_extractor: object
    tokenizer: object | None
    family: str
    directory: Path


def load_pretrained(cfg: PretrainedConfig, weights: bool = True) -> Loaded:
    """The model of ``cfg.path`` with its weights (``weights``; else the same
    architecture with random weights, for loading a dualasr checkpoint into),
    its feature extractor and, for ``cfg.whole``, its tokenizer. Every problem
    is a :class:`PretrainedError` naming the directory."""
    require_transformers()
    import transformers as tf

    d = resolve_directory(cfg.path)
    tf.utils.logging.disable_progress_bar()  # a bar per load would interleave with dualasr's own
    if not (d / "config.json").is_file():
        raise PretrainedError(f"{d}: no config.json, not a saved transformers model; {fetch_hint(cfg.path)}")
    try:  # trust_remote_code stays off: a config asking for its own code is refused
        config = tf.AutoConfig.from_pretrained(d, local_files_only=True)
    except Exception as e:
        raise PretrainedError(f"{d}: config.json cannot be read ({type(e).__name__}: {str(e)[:300]})") from None
    family = config.model_type
    if family not in FAMILIES:
        raise PretrainedError(f"{d}: holds a {family!r} model; dualasr reads {', '.join(FAMILIES)}")
    if cfg.whole and family != "whisper":
        raise PretrainedError(f"{d}: pretrained.whole needs a Whisper model (encoder and decoder), not {family!r}")
    if weights and not any((d / f).is_file() for f in WEIGHT_FILES):
        raise PretrainedError(f"{d}: no weights ({' / '.join(WEIGHT_FILES)}); {fetch_hint(cfg.path)}")
    if not (d / "preprocessor_config.json").is_file():
        raise PretrainedError(f"{d}: no preprocessor_config.json (the model's feature extractor); "
                              "save it beside the model with its save_pretrained")  # fmt: skip
    try:
        fe = tf.AutoFeatureExtractor.from_pretrained(d, local_files_only=True)
    except Exception as e:
        raise PretrainedError(f"{d}: preprocessor_config.json cannot be read ({type(e).__name__}: {str(e)[:300]})") from None
    check_feature_extractor(fe, config, d)
    cls = tf.WhisperForConditionalGeneration if cfg.whole else tf.AutoModel
    if weights:
        try:  # .bin weights are read with torch.load(weights_only=True) by transformers: no code runs
            model = cls.from_pretrained(d, local_files_only=True)
        except Exception as e:
            raise PretrainedError(f"{d}: its weights cannot be loaded ({type(e).__name__}: {str(e)[:300]})") from None
    else:
        model = tf.WhisperForConditionalGeneration(config) if cfg.whole else tf.AutoModel.from_config(config)
    if family == "whisper" and not cfg.whole:
        model = model.get_encoder()
    tokenizer = None
    if cfg.whole:
        try:
            tokenizer = tf.WhisperTokenizer.from_pretrained(d, local_files_only=True)
        except Exception as e:
            raise PretrainedError(f"{d}: no usable Whisper tokenizer files ({type(e).__name__}: {e})") from None
    if cfg.gradient_checkpointing and torch.cuda.is_available():
        # Memory for compute, only worth it on a GPU; transformers 5's name for
        # gradient_checkpointing_enable, non-reentrant (so frozen lower layers
        # do not cut the gradient of the checkpointed ones above them).
        model.activation_checkpointing_enable()
    return Loaded(model, fe, tokenizer, family, d)


def check_feature_extractor(fe, config, d: Path) -> None:
    """The feature extractor must be the family's, at 16 kHz, and shaped for
    the model (Whisper: its mel bins and window)."""
    want = FAMILIES[config.model_type]
    problems = []
    if type(fe).__name__ != want:
        problems.append(f"it is a {type(fe).__name__}, a {config.model_type} model needs a {want}")
    elif fe.sampling_rate != SAMPLE_RATE:
        problems.append(f"sampling_rate {fe.sampling_rate}, dualasr feeds {SAMPLE_RATE} Hz audio")
    elif config.model_type == "whisper":
        if fe.feature_size != config.num_mel_bins:
            problems.append(f"{fe.feature_size} mel bins, the model's num_mel_bins is {config.num_mel_bins}")
        if fe.nb_max_frames != 2 * config.max_source_positions:
            problems.append(f"a window of {fe.nb_max_frames} frames, the model's is {2 * config.max_source_positions} "
                            "(2 x max_source_positions)")  # fmt: skip
    elif fe.feature_size != 1:
        problems.append(f"feature_size {fe.feature_size}, a waveform model reads 1")
    if problems:
        raise PretrainedError(f"{d}: preprocessor_config.json does not fit config.json: {'; '.join(problems)}")


def whisper_features(fe, wav: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
    """Whisper log-mel of waveforms ``(batch, samples)``, each padded to the
    model's window: ``(batch, n_mels, window frames)``, and the valid encoder
    frames ``(batch,)`` (10 ms mel frames, then the stride-2 convolution)."""
    if int(lens.max()) > fe.n_samples:
        raise ValueError(f"an utterance of {int(lens.max()) / SAMPLE_RATE:.1f} s is longer than the Whisper "
                         f"window of {fe.n_samples / SAMPLE_RATE:.0f} s; lower data.max_utterance_seconds")  # fmt: skip
    arrays = [w[:n].float().cpu().numpy() for w, n in zip(wav, lens.tolist(), strict=True)]
    # device: transformers runs the STFT there (a GPU's, when the model is on one).
    feats = fe(arrays, sampling_rate=SAMPLE_RATE, return_tensors="pt", device=str(wav.device)).input_features
    feats = feats.to(wav.device)
    frames = torch.div(lens, fe.hop_length, rounding_mode="floor").clamp_min(1)
    return feats, torch.div(frames - 1, 2, rounding_mode="floor") + 1


class PretrainedEncoder(nn.Module):
    """A pretrained encoder under dualasr's heads: waveforms ``(batch,
    samples)`` at 16 kHz and their lengths -> :class:`EncoderOutput` of
    ``(batch, frames, d_model)`` (20 ms frames for every family).

    The heads read the top layer, or with ``layer_sum`` ``sum_i softmax(w)_i
    h_i`` over the embedding output and every layer (SUPERB's weighted sum,
    Yang et al. 2021), projected to ``d_model`` when the widths differ. With a
    ``hierarchy`` the surface CTC reads layer ``k`` as with the Conformer;
    with ``task_specific_layers`` / ``adapters`` the top layers run per output,
    with self-conditioning above layer ``k`` (:meth:`_split_top`). ``layers`` (for CKA) are the outputs of the
    transformer layers.
    """

    def __init__(
        self, loaded: Loaded, d_model: int, outputs: tuple[str, ...], cfg: PretrainedConfig,
        hierarchy: HierarchyConfig | None = None, task_specific_layers: int = 0, adapters: AdapterConfig | None = None,
        condition_vocab: int | None = None,
    ):  # fmt: skip
        super().__init__()
        self.model = loaded.model
        self.feature_extractor = loaded.feature_extractor  # plain object: its settings come from the directory
        self.family = loaded.family
        self.outputs = outputs
        config = self.model.config
        self.n_layers = config.encoder_layers if self.family == "whisper" else config.num_hidden_layers
        hidden = config.d_model if self.family == "whisper" else config.hidden_size
        self.layer_weights = nn.Parameter(torch.zeros(self.n_layers + 1)) if cfg.layer_sum else None
        self.proj = nn.Linear(hidden, d_model) if hidden != d_model else nn.Identity()
        self.branches = nn.ModuleDict()  # no task-specific blocks (read by the analysis, as the Conformer's)
        self.surface_layer = hierarchy.surface_layer if hierarchy else None
        self.surface_decoder = bool(hierarchy and hierarchy.surface_decoder)
        if self.surface_layer is not None and self.surface_layer >= self.n_layers:
            raise ValueError(f"hierarchy.surface_layer={self.surface_layer} must be below the pretrained "
                             f"encoder's {self.n_layers} layers")  # fmt: skip
        freeze_layers(self.model, self.family, cfg.train_layers)
        self.top = nn.ModuleList()  # shared top layers run per output (adapters)
        self.adapters = nn.ModuleDict()
        self._call = None  # the trunk's last layer call (args, kwargs, output), for the layers above
        self.conditioning = None
        n_top = task_specific_layers or (adapters.layers if adapters else 0)
        if hierarchy and hierarchy.self_condition:
            # Self-conditioned CTC (Nozaki & Komatsu 2021) as in ConformerEncoder: the layers
            # above k read h_k + Linear(softmax(CTC_surface(h_k))).
            if condition_vocab is None:
                raise ValueError("hierarchy.self_condition needs the surface vocabulary size")
            self.conditioning = nn.Linear(condition_vocab, hidden)
            n_top = self.n_layers - self.surface_layer
        if n_top:
            self._split_top(n_top, task_specific_layers > 0, hidden, adapters)

    def _split_top(self, n_top: int, branch: bool, hidden: int, adapters: AdapterConfig | None) -> None:
        """Take the top ``n_top`` transformer layers out of the pretrained
        stack: as a copy per output (task-specific layers), or shared and each
        followed by a per-output adapter. The stack below (the trunk) still
        runs in transformers' forward; the layers above are called as it
        called the trunk's last layer (its attention mask, WavLM's position
        bias), captured by a hook."""
        if n_top >= self.n_layers:
            raise ValueError(f"{n_top} task-specific or adapted layers leave no shared layer of the pretrained "
                             f"encoder's {self.n_layers}")  # fmt: skip
        if self.layer_weights is not None:
            raise ValueError("pretrained.layer_sum with task-specific layers or adapters: choose one")
        stack = transformer_layers(self.model, self.family)
        trunk, top = stack[: self.n_layers - n_top], list(stack[self.n_layers - n_top :])
        if self.family == "whisper":
            self.model.layers = nn.ModuleList(trunk)
        else:
            self.model.encoder.layers = nn.ModuleList(trunk)
        if branch:
            self.branches = nn.ModuleDict({o: nn.ModuleList(copy.deepcopy(top)) for o in self.outputs})
        else:
            self.top = nn.ModuleList(top)
            if adapters is not None:
                self.adapters = nn.ModuleDict(
                    {o: nn.ModuleList(BottleneckAdapter(hidden, adapters.dim) for _ in top) for o in self.outputs}
                )
        trunk[-1].register_forward_hook(self._capture, with_kwargs=True)

    def _capture(self, module, args, kwargs, output) -> None:
        self._call = (args, kwargs, output)

    def _final_norm(self) -> nn.Module | None:
        """The layer norm transformers applies after the last layer, if any."""
        if self.family == "whisper":
            return self.model.layer_norm
        return self.model.encoder.layer_norm if self.model.config.do_stable_layer_norm else None

    def _streams(self) -> tuple[Tensor, dict[str, list[Tensor]]]:
        """The trunk's output ``(batch, T, hidden)`` and, per output, the
        outputs of its layers above the trunk (the last one normalised as
        transformers normalises the top)."""
        args, kwargs, output = self._call
        self._call = None
        trunk = output[0] if isinstance(output, tuple) else output
        kwargs = dict(kwargs)
        if isinstance(output, tuple) and "position_bias" in kwargs:  # WavLM: layer 0 computes it
            kwargs["position_bias"] = output[1]
        norm, streams = self._final_norm(), {}
        for o in self.outputs:
            y, stack = trunk, []
            layers = self.branches[o] if o in self.branches else self.top
            for j, layer in enumerate(layers):
                y = layer(y, *args[1:], **kwargs)
                y = y[0] if isinstance(y, tuple) else y
                if o in self.adapters:
                    y = self.adapters[o][j](y)
                stack.append(y)
            if norm is not None:
                stack[-1] = norm(stack[-1])
            streams[o] = stack
        return trunk, streams

    def forward(
        self, wav: Tensor, lens: Tensor, return_layers: bool = False, ctc: nn.Module | None = None
    ) -> EncoderOutput:
        """``ctc``: the surface CTC head, needed with self-conditioning."""
        if self.conditioning is not None and ctc is None:
            raise ValueError("self-conditioning needs the surface CTC head: pass ctc=")
        if self.family == "whisper":
            feats, enc_lens = whisper_features(self.feature_extractor, wav, lens)
            out = self.model(input_features=feats, output_hidden_states=True)
        else:
            arrays = [w[:n].float().cpu().numpy() for w, n in zip(wav, lens.tolist(), strict=True)]
            fe = self.feature_extractor(arrays, sampling_rate=SAMPLE_RATE, padding=True, return_tensors="pt",
                                        return_attention_mask=True)  # fmt: skip
            kwargs = {"input_values": fe.input_values.to(wav.device)}
            if self.feature_extractor.return_attention_mask:  # models trained without it take zero padding
                kwargs["attention_mask"] = fe.attention_mask.to(wav.device)
            out = self.model(**kwargs, output_hidden_states=True)
            enc_lens = self.model._get_feat_extract_output_lengths(lens).long()
        hidden = out.hidden_states  # (embeddings, layer 1, ..., layer n), each (batch, T, hidden)
        if self.conditioning is not None:
            return self._conditioned_output(hidden, enc_lens, return_layers, ctc)
        if len(self.branches) or len(self.top):
            return self._split_output(hidden, enc_lens, return_layers)
        if self.layer_weights is not None:
            w = torch.softmax(self.layer_weights, 0)
            top = sum(w[i] * h for i, h in enumerate(hidden))
        else:
            top = out.last_hidden_state
        t = top.size(1)
        enc_lens = enc_lens.clamp(max=t).to(top.device)
        shared = self.proj(top)
        out_map = {o: shared for o in self.outputs}
        ctc_in = dict(out_map)
        features = [shared]
        if self.surface_layer is not None:
            tap = self.proj(hidden[self.surface_layer])
            ctc_in["surface"] = tap
            if self.surface_decoder:
                out_map["surface"] = tap
            features = [tap, shared]
        layers = None
        if return_layers:
            layers = {o: list(hidden[1:]) for o in self.outputs}
            if self.surface_layer is not None:
                layers["surface"] = list(hidden[1 : self.surface_layer + 1])
        return EncoderOutput(out_map, ctc_in, shared, features, enc_lens, lengths_to_mask(enc_lens, t), layers)


    def _conditioned_output(self, hidden, enc_lens: Tensor, return_layers: bool, ctc: nn.Module) -> EncoderOutput:
        """:class:`EncoderOutput` of a self-conditioned hierarchy: the surface
        CTC reads layer ``k`` (``tap``), the layers above read ``h_k`` plus the
        projected CTC posteriors. As in ConformerEncoder the heads read their
        own projection of ``h_k``, so ``[tap, top]`` cut the graph for torchjd."""
        args, kwargs, output = self._call
        self._call = None
        h_k = output[0] if isinstance(output, tuple) else output
        tap = self.proj(h_k)
        posteriors = ctc.log_probs(self.proj(h_k)).exp().to(h_k.dtype)  # (batch, T, vocab)
        y, stack = h_k + self.conditioning(posteriors), []
        kwargs = dict(kwargs)
        if isinstance(output, tuple) and "position_bias" in kwargs:
            kwargs["position_bias"] = output[1]
        for layer in self.top:
            y = layer(y, *args[1:], **kwargs)
            y = y[0] if isinstance(y, tuple) else y
            stack.append(y)
        if (norm := self._final_norm()) is not None:
            stack[-1] = norm(stack[-1])
        top = self.proj(stack[-1])
        t = top.size(1)
        enc_lens = enc_lens.clamp(max=t).to(top.device)
        out_map = {o: top for o in self.outputs}
        ctc_in = {**out_map, "surface": tap}
        if self.surface_decoder:
            out_map["surface"] = tap
        layers = None
        if return_layers:
            below = [*hidden[1:-1], h_k] if self.family == "whisper" else list(hidden[1:])
            layers = {o: [*below, *stack] for o in self.outputs}
            layers["surface"] = below
        return EncoderOutput(out_map, ctc_in, top, [tap, top], enc_lens, lengths_to_mask(enc_lens, t), layers)

    def _split_output(self, hidden: tuple[Tensor, ...], enc_lens: Tensor, return_layers: bool) -> EncoderOutput:
        """:class:`EncoderOutput` of an encoder with task-specific or adapted top layers."""
        trunk, streams = self._streams()
        t = trunk.size(1)
        enc_lens = enc_lens.clamp(max=t).to(trunk.device)
        out_map = {o: self.proj(stack[-1]) for o, stack in streams.items()}
        layers = None
        if return_layers:  # the trunk's own output, before the norm transformers puts on the top
            below = [*hidden[1:-1], trunk] if self.family == "whisper" else list(hidden[1:])
            layers = {o: [*below, *stack] for o, stack in streams.items()}
        return EncoderOutput(out_map, dict(out_map), trunk, [trunk], enc_lens, lengths_to_mask(enc_lens, t), layers)


def transformer_layers(model: nn.Module, family: str) -> nn.ModuleList:
    """The stack of transformer layers of a pretrained encoder."""
    return model.layers if family == "whisper" else model.encoder.layers


def freeze_layers(model: nn.Module, family: str, train_layers: int | None) -> None:
    """Fine-tune every layer (None), or only the top ``train_layers`` (and the
    final layer norm; 0 freezes everything). wav2vec2's convolutional feature
    encoder is frozen in every case, as in its fine-tuning recipe."""
    if family != "whisper":
        model.feature_extractor._freeze_parameters()  # the conv stack; HuBERT has no freeze_feature_encoder
    if train_layers is None:
        return
    model.requires_grad_(False)
    if train_layers == 0:
        return
    for layer in transformer_layers(model, family)[-train_layers:]:
        layer.requires_grad_(True)
    norm = model.layer_norm if family == "whisper" else model.encoder.layer_norm
    norm.requires_grad_(True)


class WhisperSO(nn.Module):
    """A whole Whisper model fine-tuned on one output, as the reference study's
    Whisper SO baselines. Same interface as :class:`~dualasr.model.asr.DualASR`
    where the training loop, decoding and analysis use it: ``forward(wav,
    lens, targets) -> (loss, stats)``, ``encode``, ``outputs``, ``input_kind``.

    Loss: label-smoothed cross-entropy over Whisper's tokens (the prompt
    ``<|startoftranscript|>`` [language] ``<|transcribe|><|notimestamps|>``
    excluded, end-of-text included), summed and divided by the batch size, as
    dualasr's attention loss. ``tokenizer`` is the output's dualasr tokenizer:
    targets arrive and hypotheses leave as its ids.
    """

    input_kind = "audio"

    def __init__(self, loaded: Loaded, output: str, tokenizer: Tokenizer, language: str | None,
                 label_smoothing: float = 0.1, train_layers: int | None = None):  # fmt: skip
        super().__init__()
        self.model = loaded.model
        self.feature_extractor = loaded.feature_extractor
        self.whisper_tokenizer = loaded.tokenizer
        self.tokenizer = tokenizer
        self.outputs = (output,)
        self.label_smoothing = label_smoothing
        if language is not None and f"<|{language}|>" in self.whisper_tokenizer.get_vocab():
            self.whisper_tokenizer.set_prefix_tokens(language=language, task="transcribe", predict_timestamps=False)
        else:  # a tokenizer without language tokens (e.g. a small test one): no language in the prompt
            self.whisper_tokenizer.set_prefix_tokens(task="transcribe", predict_timestamps=False)
        self.prompt = list(self.whisper_tokenizer.prefix_tokens)
        if train_layers is not None:
            freeze_layers(self.model.get_encoder(), "whisper", train_layers)

    def set_cmvn(self, mean: Tensor, std: Tensor) -> None:
        """Whisper normalises its own log-mel: dualasr's CMVN does not apply."""

    def _labels(self, ys: Tensor, ys_lens: Tensor) -> Tensor:
        """dualasr ids ``(batch, L)`` -> Whisper labels ``(batch, L')`` (the
        prompt after start-of-transcript, the text, end-of-text), padded -100."""
        texts = [self.tokenizer.decode(y[:n].tolist()) for y, n in zip(ys, ys_lens.tolist(), strict=True)]
        ids = [self.whisper_tokenizer(t).input_ids[1:] for t in texts]  # without <|startoftranscript|>
        out = torch.full((len(ids), max(map(len, ids))), -100, dtype=torch.long)
        for i, seq in enumerate(ids):
            out[i, : len(seq)] = torch.tensor(seq)
        return out.to(ys.device)

    def forward(self, wav: Tensor, lens: Tensor, targets: dict) -> tuple[Tensor, dict[str, float]]:
        from transformers.models.whisper.modeling_whisper import shift_tokens_right

        (o,) = self.outputs
        labels = self._labels(*targets[o])
        feats, _ = whisper_features(self.feature_extractor, wav, lens)
        config = self.model.config
        dec_in = shift_tokens_right(labels, config.pad_token_id, config.decoder_start_token_id)
        logits = self.model(input_features=feats, decoder_input_ids=dec_in).logits.float()
        # The prompt's tokens are given, not predicted: only the text and end-of-text count.
        labels = labels.clone()
        labels[:, : len(self.prompt) - 1] = -100
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100,
                               label_smoothing=self.label_smoothing, reduction="sum") / labels.size(0)  # fmt: skip
        valid = labels != -100
        acc = (logits.argmax(-1) == labels)[valid].float().mean()
        value = loss.detach()  # statistics stay tensors until logged, as DualASR's
        return loss, {f"loss_att_{o}": value, f"acc_{o}": acc, f"loss_{o}": value, "loss": value}

    def encode(self, wav: Tensor, lens: Tensor, return_layers: bool = False) -> EncoderOutput:
        """The Whisper encoder's states, for analysis: top layer and (with
        ``return_layers``) every layer's output, ``(batch, frames, d_model)``."""
        feats, enc_lens = whisper_features(self.feature_extractor, wav, lens)
        out = self.model.get_encoder()(input_features=feats, output_hidden_states=True)
        top = out.last_hidden_state
        enc_lens = enc_lens.clamp(max=top.size(1))
        (o,) = self.outputs
        layers = {o: list(out.hidden_states[1:])} if return_layers else None
        return EncoderOutput({o: top}, {o: top}, top, [top], enc_lens, lengths_to_mask(enc_lens, top.size(1)), layers)

    @torch.no_grad()
    def generate(self, wav: Tensor, lens: Tensor, beam: int, max_len: int = 200) -> list[tuple[list[int], float]]:
        """Beam search with Whisper's decoder after the prompt: per utterance,
        the best hypothesis as dualasr ids of this output and its
        length-normalised log-probability (transformers' beam score; 0 for
        greedy search)."""
        from transformers import GenerationConfig, GenerationMixin

        feats, _ = whisper_features(self.feature_extractor, wav, lens)
        config = self.model.config
        prompt = torch.tensor([self.prompt], device=wav.device).expand(wav.size(0), -1)
        max_new = max(1, min(max_len, config.max_target_positions - len(self.prompt)))
        gen = GenerationConfig(num_beams=beam, max_new_tokens=max_new, do_sample=False, eos_token_id=config.eos_token_id,
                               pad_token_id=config.pad_token_id, decoder_start_token_id=config.decoder_start_token_id,
                               return_dict_in_generate=True, output_scores=beam > 1)  # fmt: skip
        # GenerationMixin's generate, not Whisper's long-form one: the prompt is
        # given, utterances fit the window, and no timestamps are predicted.
        # Whisper's encoder reads the whole padded window (no mask); saying so keeps
        # generate from guessing one from pad tokens.
        every_frame = torch.ones(feats.shape[0], feats.shape[-1], dtype=torch.long, device=feats.device)
        out = GenerationMixin.generate(self.model, input_features=feats, attention_mask=every_frame,
                                       decoder_input_ids=prompt, decoder_attention_mask=torch.ones_like(prompt),
                                       generation_config=gen)  # fmt: skip
        texts = self.whisper_tokenizer.batch_decode(out.sequences[:, len(self.prompt) :], skip_special_tokens=True)
        scores = out.sequences_scores.tolist() if beam > 1 else [0.0] * len(texts)
        return [(self.tokenizer.encode(" ".join(t.split())), s) for t, s in zip(texts, scores, strict=True)]
