"""Tokenizers, one per output, with a vocabulary built from training text.

Units:
- ``char``: characters (English letters; Korean Hangul syllables), the word
  boundary written as ``▁`` so CTC and the decoder see it as a token;
- ``jamo``: Korean syllables decomposed into conjoining jamo (hangul-jamo),
  recomposed on decoding;
- ``phone``: whitespace-separated ARPAbet phones, ``▁`` not used.

Ids follow ESPnet's convention: ``<blank>`` = 0 (CTC blank), ``<unk>`` = 1,
the units sorted, and ``<sos/eos>`` last. A tokenizer is saved as JSON beside
the model, so decoding never depends on the training data being present.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import hangul_jamo

from dualasr.atomic import atomic_write_text

Unit = Literal["char", "jamo", "phone"]
BLANK, UNK, SOS_EOS = "<blank>", "<unk>", "<sos/eos>"
SPACE = "\u2581"  # ▁


def split_units(text: str, unit: Unit) -> list[str]:
    """The units of ``text`` (already normalised)."""
    if unit == "phone":
        return text.split()
    if unit == "jamo":
        text = hangul_jamo.decompose(text)
    elif unit != "char":
        raise ValueError(f"unknown token unit {unit!r}; expected char, jamo or phone")
    return [SPACE if c == " " else c for c in text]


def join_units(units: Iterable[str], unit: Unit) -> str:
    """Inverse of :func:`split_units`."""
    if unit == "phone":
        return " ".join(units)
    text = "".join(" " if u == SPACE else u for u in units)
    if unit == "jamo":
        text = hangul_jamo.compose(text)
    return " ".join(text.split())


class Tokenizer:
    """Maps a normalised transcription to ids and back."""

    def __init__(self, tokens: list[str], unit: Unit):
        if tokens[:2] != [BLANK, UNK] or tokens[-1] != SOS_EOS:
            raise ValueError("tokens must start with <blank>, <unk> and end with <sos/eos>")
        if len(set(tokens)) != len(tokens):
            raise ValueError("duplicate tokens in vocabulary")
        self.tokens = tokens
        self.unit: Unit = unit
        self._ids = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], unit: Unit, min_count: int = 1) -> Tokenizer:
        """Vocabulary of every unit seen at least ``min_count`` times in ``texts``."""
        counts = Counter(u for text in texts for u in split_units(text, unit))
        units = sorted(u for u, c in counts.items() if c >= min_count)
        return cls([BLANK, UNK, *units, SOS_EOS], unit)

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
        return [self._ids.get(u, self.unk) for u in split_units(text, self.unit)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; blank and sos/eos are dropped."""
        special = {self.blank, self.sos_eos}
        return join_units((self.tokens[i] for i in ids if i not in special), self.unit)

    def save(self, path: str | Path) -> None:
        """Write atomically as JSON ``{"unit": ..., "tokens": [...]}``."""
        text = json.dumps({"unit": self.unit, "tokens": self.tokens}, ensure_ascii=False, indent=0)
        atomic_write_text(path, text, overwrite=True)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(data["tokens"], data["unit"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a dualasr tokenizer file ({e})") from e
