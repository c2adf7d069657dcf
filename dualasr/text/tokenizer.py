"""Tokenizers, one per output, with a vocabulary built from training text.

Units:
- ``char``: characters (English letters; Korean Hangul syllables), the word
  boundary written as ``▁`` so CTC and the decoder see it as a token;
- ``jamo``: Korean syllables decomposed into conjoining jamo (hangul-jamo),
  recomposed on decoding;
- ``phone``: whitespace-separated ARPAbet phones, ``▁`` not used;
- ``subword``: sentencepiece pieces (a unigram language model trained on the
  output's training text, as ESPnet's ``bpemode: unigram``), ``▁`` starting a
  word as in characters. The trained sentencepiece model is kept inside the
  tokenizer (and so inside every checkpoint) because encoding needs it; decoding
  only concatenates the pieces.

Ids follow ESPnet's convention: ``<blank>`` = 0 (CTC blank), ``<unk>`` = 1,
the units sorted, and ``<sos/eos>`` last. A tokenizer is saved as JSON beside
the model, so decoding never depends on the training data being present.
"""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import hangul_jamo
import sentencepiece as spm

from dualasr.atomic import atomic_write_text

Unit = Literal["char", "jamo", "phone", "subword"]
BLANK, UNK, SOS_EOS = "<blank>", "<unk>", "<sos/eos>"
SPACE = "\u2581"  # ▁


def split_units(text: str, unit: Unit) -> list[str]:
    """The units of ``text`` (already normalised)."""
    if unit == "phone":
        return text.split()
    if unit == "jamo":
        text = hangul_jamo.decompose(text)
    elif unit != "char":
        raise ValueError(f"unknown token unit {unit!r}; expected char, jamo or phone (subword needs a trained Tokenizer)")
    return [SPACE if c == " " else c for c in text]


def join_units(units: Iterable[str], unit: Unit) -> str:
    """Inverse of :func:`split_units` (and of a ``subword`` tokenizer's pieces)."""
    if unit == "phone":
        return " ".join(units)
    text = "".join(units).replace(SPACE, " ")
    if unit == "jamo":
        text = hangul_jamo.compose(text)
    return " ".join(text.split())


class Tokenizer:
    """Maps a normalised transcription to ids and back."""

    def __init__(self, tokens: list[str], unit: Unit, sp_model: bytes | None = None):
        if tokens[:2] != [BLANK, UNK] or tokens[-1] != SOS_EOS:
            raise ValueError("tokens must start with <blank>, <unk> and end with <sos/eos>")
        if len(set(tokens)) != len(tokens):
            raise ValueError("duplicate tokens in vocabulary")
        if (unit == "subword") != (sp_model is not None):
            raise ValueError("a sentencepiece model is needed for, and only for, the subword unit")
        self.tokens = tokens
        self.unit: Unit = unit
        self.sp_model = sp_model
        self._sp = spm.SentencePieceProcessor(model_proto=sp_model) if sp_model is not None else None
        self._ids = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], unit: Unit, min_count: int = 1, vocab_size: int | None = None) -> Tokenizer:
        """Vocabulary of every unit seen at least ``min_count`` times in ``texts``;
        for ``subword``, a sentencepiece model of at most ``vocab_size`` pieces."""
        if unit == "subword":
            if vocab_size is None:
                raise ValueError("the subword unit needs a vocab_size")
            return cls._build_subword(list(texts), vocab_size)
        counts = Counter(u for text in texts for u in split_units(text, unit))
        units = sorted(u for u, c in counts.items() if c >= min_count)
        return cls([BLANK, UNK, *units, SOS_EOS], unit)

    @classmethod
    def _build_subword(cls, texts: list[str], vocab_size: int) -> Tokenizer:
        if not texts:
            raise ValueError("no training text to build a subword vocabulary from")
        model = io.BytesIO()
        # Texts are already normalised (dualasr.text.normalize), so sentencepiece
        # must not re-normalise them ("identity"); its <unk> is our id 1 and it has
        # no bos/eos/pad of its own. hard_vocab_limit off: vocab_size is an upper
        # bound, so a small corpus (e.g. the smoke config's) does not fail.
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, model_type="unigram",
            vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0,
            normalization_rule_name="identity", unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
            unk_piece=UNK, num_threads=1, minloglevel=2,
        )  # fmt: skip
        proto = model.getvalue()
        sp = spm.SentencePieceProcessor(model_proto=proto)
        pieces = sorted(sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_unknown(i))
        return cls([BLANK, UNK, *pieces, SOS_EOS], "subword", proto)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def blank(self) -> int:
        return 0

    @property
    def unk(self) -> int:
        return 1

    @property
    def sos_eos(self) -> int:
        return len(self.tokens) - 1

    def encode(self, text: str) -> list[int]:
        if self._sp is not None:
            units = self._sp.encode(text, out_type=str)
        else:
            units = split_units(text, self.unit)
        return [self._ids.get(u, self.unk) for u in units]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; blank and sos/eos are dropped."""
        special = {self.blank, self.sos_eos}
        return join_units((self.tokens[i] for i in ids if i not in special), self.unit)

    def to_dict(self) -> dict:
        """``{"unit", "tokens"}`` (+ ``"sp_model"``, base64) for JSON and checkpoints."""
        d = {"unit": self.unit, "tokens": self.tokens}
        if self.sp_model is not None:
            d["sp_model"] = base64.b64encode(self.sp_model).decode("ascii")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Tokenizer:
        sp = d.get("sp_model")
        return cls(d["tokens"], d["unit"], base64.b64decode(sp) if sp is not None else None)

    def save(self, path: str | Path) -> None:
        """Write atomically as JSON (:meth:`to_dict`)."""
        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=0), overwrite=True)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise ValueError(f"{path}: not a dualasr tokenizer file ({e})") from e
