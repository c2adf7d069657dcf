import pytest

from dualasr.text.normalize import normalize, normalize_phones
from dualasr.text.tokenizer import SPACE, Tokenizer, join_units, split_units


@pytest.mark.parametrize(
    "raw, lang, clean",
    [
        ("Don’t  stop—the “Rain”!", "en", "don't stop the rain"),
        ("'Quoted' words, e.g. well-known.", "en", "quoted words e g well known"),
        ("(3시)에 만나, 좋아!\t 네.", "ko", "3시에 만나 좋아 네"),
        ("\u1100\u1161\u11a8 가", "ko", "각 가"),  # conjoining jamo compose to a syllable
    ],
)
def test_normalize(raw, lang, clean):
    assert normalize(raw, lang) == clean


def test_normalize_unknown_language():
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        normalize("bonjour", "fr")


def test_normalize_phones_strips_stress():
    assert normalize_phones("ah0 B  ER1") == ["AH", "B", "ER"]


@pytest.mark.parametrize(
    "text, unit, n",
    [("hi yo", "char", 5), ("국물 좋아", "char", 5), ("국물 좋아", "jamo", 12), ("AH B", "phone", 2)],
)
def test_units_round_trip(text, unit, n):
    units = split_units(text, unit)
    assert len(units) == n
    assert join_units(units, unit) == text
    if unit != "phone":
        assert SPACE in units


def test_tokenizer_ids_and_save(tmp_path):
    tok = Tokenizer.build(["think so", "sink"], "char")
    assert tok.tokens[0] == "<blank>" and tok.tokens[1] == "<unk>" and tok.tokens[-1] == "<sos/eos>"
    ids = tok.encode("sin x")
    assert tok.unk in ids and tok.blank not in ids
    assert tok.decode(tok.encode("think so")) == "think so"
    assert tok.decode([tok.blank, *tok.encode("so"), tok.sos_eos]) == "so"
    tok.save(tmp_path / "tok.json")
    assert Tokenizer.load(tmp_path / "tok.json").tokens == tok.tokens


def test_min_count_and_bad_file(tmp_path):
    tok = Tokenizer.build(["aab"], "char", min_count=2)
    assert "b" not in tok.tokens and "a" in tok.tokens
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a dualasr tokenizer"):
        Tokenizer.load(tmp_path / "bad.json")


SENTENCES = [
    f"{who} {verb} the {thing} downstairs"
    for who in ("i", "you", "she", "we", "they")
    for verb in ("opened", "found", "fixed", "painted")
    for thing in ("red boxes", "silver photos", "old helmet", "blue sweater")
]


def test_subword_tokenizer_pieces_round_trip_and_save(tmp_path):
    tok = Tokenizer.build(SENTENCES, "subword", vocab_size=40)
    assert tok.unit == "subword" and tok.tokens[:2] == ["<blank>", "<unk>"] and tok.tokens[-1] == "<sos/eos>"
    assert len(tok) <= 40 + 2  # sentencepiece's pieces (its <unk> is ours) + blank + sos/eos
    # A word in every training sentence is one piece; sentences take fewer ids than characters.
    assert f"{SPACE}downstairs" in tok.tokens
    for text in [*SENTENCES, "we found the silver helmet"]:  # the last one is unseen
        ids = tok.encode(text)
        assert tok.unk not in ids and len(ids) < len(split_units(text, "char"))
        assert tok.decode(ids) == text
    assert tok.unk in tok.encode("zebra")  # "z" is no piece
    assert Tokenizer.build(SENTENCES, "subword", vocab_size=40).sp_model == tok.sp_model  # deterministic
    tok.save(tmp_path / "tok.json")
    loaded = Tokenizer.load(tmp_path / "tok.json")
    assert loaded.tokens == tok.tokens and loaded.encode(SENTENCES[3]) == tok.encode(SENTENCES[3])
    assert Tokenizer.from_dict(tok.to_dict()).encode("you fixed it") == tok.encode("you fixed it")


def test_subword_tokenizer_errors():
    with pytest.raises(ValueError, match="needs a vocab_size"):
        Tokenizer.build(SENTENCES, "subword")
    with pytest.raises(ValueError, match="sentencepiece model is needed"):
        Tokenizer(["<blank>", "<unk>", "a", "<sos/eos>"], "subword")
    with pytest.raises(ValueError, match="no training text"):
        Tokenizer.build([], "subword", vocab_size=40)
