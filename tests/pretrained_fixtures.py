"""Tiny randomly initialised transformers models saved with ``save_pretrained``,
so tests load them through the same local-directory path users take.

The Whisper tokenizer is byte-level BPE with no merges: the 256 byte tokens
(the ``tokenizers`` library's byte-level alphabet, as Whisper's own vocabulary starts) and
Whisper's special tokens; it encodes any text, Hangul included, offline.
The Whisper window is 4 s (``max_source_positions`` 200, feature extractor
``chunk_length`` 4) instead of 30 s, so a step takes a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|notimestamps|>"]
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2,
        "mask_time_prob": 0.0, "layerdrop": 0.0}  # fmt: skip


def byte_vocab() -> dict[str, int]:
    from tokenizers import pre_tokenizers

    return {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}


def save_whisper(d: Path, seconds: int = 4) -> Path:
    """A 2+1-layer Whisper (d 32) with a window of ``seconds``, its feature
    extractor and tokenizer in ``d``."""
    tok = transformers.WhisperTokenizer(vocab=byte_vocab(), merges=[])
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    cfg = transformers.WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=2,
        decoder_layers=1, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=50 * seconds, max_target_positions=128, pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )  # fmt: skip
    transformers.WhisperForConditionalGeneration(cfg).save_pretrained(d)
    transformers.WhisperFeatureExtractor(feature_size=80, chunk_length=seconds).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def save_wav2vec2(d: Path, family: str = "wav2vec2") -> Path:
    """A 2-layer wav2vec2 / HuBERT / WavLM (hidden 32, 20 ms frames) with its feature extractor in ``d``."""
    config_cls = {"wav2vec2": transformers.Wav2Vec2Config, "hubert": transformers.HubertConfig,
                  "wavlm": transformers.WavLMConfig}[family]  # fmt: skip
    transformers.AutoModel.from_config(config_cls(**TINY)).save_pretrained(d)
    transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, return_attention_mask=True).save_pretrained(d)
    return d


def save_pretrained_dir(root: Path, family: str, **kwargs) -> Path:
    d = root / family
    d.mkdir(parents=True, exist_ok=True)
    return save_whisper(d, **kwargs) if family == "whisper" else save_wav2vec2(d, family)
