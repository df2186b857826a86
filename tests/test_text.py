"""Text stages: normalisation, lexicon and phones on real text in several languages."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared
from w2vu.errors import W2vuError
from w2vu.io.dictionary import SIL
from w2vu.text import lexicon as lexicon_module
from w2vu.text.encoding import check_utf8
from w2vu.text.lexicon import MAX_WORD_CHARS, LexiconSettings, build_lexicon, read_lexicon
from w2vu.text.normalize import NormalizeSettings, normalize_line, normalize_text
from w2vu.text.phonemize import check_language, phonemize_words
from w2vu.text.phones import PhoneSettings, build_phone_text

SAMPLES = {
    "en-us": "The cat sat on the mat. The dog sat on the log!\nA cat and a dog.\n",
    "sv": "Katten satt på mattan. Hunden låg på golvet.\nKatten och hunden är vänner.\n",
    "de": "Die Katze sitzt auf der Matte. Es ist gut.\nDer Hund und die Katze.\n",
}


def test_reference_character_filter():
    assert normalize_line("Hello, world! It's a well-known “fact”: 42.") == \
        "Hello world It's a well-known fact 42"
    assert normalize_line("ﬁne\tcafé (naïve)") == "fine café naïve"  # NFKC, marks kept
    assert normalize_line("Ünïcödé", casefold=True) == "ünïcödé"
    assert normalize_line("¿¡...!?") == ""


def test_bad_text_is_counted_or_a_clear_error(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_bytes(b"good line\n\xff\xfe broken bytes\n\n   \n--- rule ---\n" +
                    b"word " * 3000 + b"\n")
    counts = normalize_text([raw], tmp_path / "out.txt", NormalizeSettings(max_line_chars=500))
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert lines[:2] == ["good line", "broken bytes"]
    assert counts["lines with invalid UTF-8 (decoded with replacement)"] == 1
    assert counts["empty lines dropped"] == 2 and counts["lines with --- dropped"] == 1
    assert counts["long lines split"] == 1 and all(len(x) <= 500 for x in lines)
    assert counts["lines in"] == 6 and counts["lines out"] == len(lines)

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(W2vuError, match="no text left"):
        normalize_text([empty], tmp_path / "o.txt", NormalizeSettings())
    punctuation = tmp_path / "punct.txt"
    punctuation.write_text("!!!\n...\n")
    with pytest.raises(W2vuError, match="no text left"):
        normalize_text([punctuation], tmp_path / "o.txt", NormalizeSettings())
    with pytest.raises(W2vuError, match="not-there.txt"):
        normalize_text([tmp_path / "not-there.txt"], tmp_path / "o.txt", NormalizeSettings())


def test_text_that_is_mostly_not_utf8_is_refused_with_its_likely_encoding(tmp_path):
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("".join(f"Élisabeth était à Pemberley {i} fois.\n\n"
                               for i in range(150)).encode("latin-1"))
    for path, guess in ((noise, "binary data, not text"), (latin1, "Latin-1")):
        with pytest.raises(W2vuError) as caught:
            check_utf8(path)  # the configuration check, before any job runs
        assert str(path) in str(caught.value) and guess in str(caught.value)
        with pytest.raises(W2vuError, match=f"{path.name}: .* lines are not UTF-8 .*{guess}"):
            normalize_text([path], tmp_path / "out.txt", NormalizeSettings())
        assert not (tmp_path / "out.txt").exists()
    with pytest.raises(W2vuError, match="150 of 150 lines are not UTF-8.*iconv -f LATIN1"):
        check_utf8(latin1)
    utf16 = tmp_path / "utf16.txt"
    utf16.write_text("Élisabeth était là.\n" * 20, encoding="utf-16")
    with pytest.raises(W2vuError, match="likely UTF-16"):
        check_utf8(utf16)


def test_a_few_bad_lines_are_counted_and_warned_about(tmp_path, caplog):
    text = tmp_path / "text.txt"
    text.write_bytes("Élisabeth était là.\n".encode() * 8 + "Élisabeth\n".encode("latin-1") * 2)
    check_utf8(text)
    with caplog.at_level("WARNING"):
        counts = normalize_text([text], tmp_path / "out.txt", NormalizeSettings())
    assert counts["lines with invalid UTF-8 (decoded with replacement)"] == 2
    assert f"{text}: 2 of 10 lines are not valid UTF-8 (likely Latin-1" in caplog.text
    assert "(lines 9, 10)" in caplog.text


def test_lid_filter_with_a_local_fasttext_model(tmp_path):
    fasttext = pytest.importorskip("fasttext")
    train = tmp_path / "lid.txt"
    en = SAMPLES["en-us"].split() * 20
    sv = SAMPLES["sv"].split() * 20
    train.write_text("".join(f"__label__en {' '.join(en[i:i + 6])}\n__label__sv "
                             f"{' '.join(sv[i:i + 6])}\n" for i in range(0, 120, 3)))
    model = fasttext.train_supervised(str(train), epoch=20, verbose=0, seed=1, thread=1)
    model.save_model(str(tmp_path / "lid.bin"))
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(SAMPLES["en-us"] + SAMPLES["sv"])
    counts = normalize_text([mixed], tmp_path / "out.txt",
                            NormalizeSettings(casefold=False, lid_model=str(tmp_path / "lid.bin"),
                                              lid_label="en"))
    assert counts["lines dropped by LID"] == 2
    assert (tmp_path / "out.txt").read_text().startswith("The cat sat")


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_lexicon_and_phones_in_three_languages(tmp_path, language):
    text = tmp_path / "norm.txt"
    lines = [normalize_line(x, casefold=True) for x in SAMPLES[language].splitlines()] * 2
    text.write_text("\n".join(lines) + "\n")
    stats = build_lexicon(text, tmp_path / "words.txt", tmp_path / "lexicon.lst",
                          LexiconSettings(language), cache_dir=tmp_path / "cache")
    lexicon = read_lexicon(tmp_path / "lexicon.lst")
    assert stats["in lexicon"] == len(lexicon) > 5
    assert all(p and "  " not in p for p in lexicon.values())  # no empty phone tokens
    build_phone_text(text, tmp_path / "lexicon.lst", tmp_path / "dict.phn.txt",
                     tmp_path / "filtered.lst", tmp_path / "lm.txt", PhoneSettings(min_phones=1))
    entries = [line.split() for line in (tmp_path / "dict.phn.txt").read_text().splitlines()]
    assert entries[-1] == [SIL, "0"]
    assert [int(n) for _, n in entries[:-1]] == sorted((int(n) for _, n in entries[:-1]),
                                                       reverse=True)
    phone_lines = (tmp_path / "lm.txt").read_text().splitlines()
    assert phone_lines and all(x.startswith(SIL) and x.endswith(SIL) for x in phone_lines)


def test_german_empty_phone_tokens_are_dropped():
    """espeak gives German "es" a leading empty phone token; it must not survive."""
    phones = phonemize_words(["es", "gut"], "de")
    assert all(p and "" not in p.split(" ") for p in phones.values())


def test_unknown_language_lists_close_matches():
    with pytest.raises(W2vuError, match="close matches: .*en-us"):
        check_language("en-uss")
    with pytest.raises(W2vuError, match="sv"):
        check_language("swedish")


def test_rerun_phonemises_only_new_words(tmp_path, monkeypatch):
    calls: list[list[str]] = []
    real = lexicon_module.espeak_words

    def counting(words, language):
        calls.append(list(words))
        return real(words, language)

    monkeypatch.setattr(lexicon_module, "espeak_words", counting)
    text = tmp_path / "t.txt"
    text.write_text("the cat sat\nthe cat sat\n")
    settings = LexiconSettings("en-us")
    build_lexicon(text, tmp_path / "w", tmp_path / "l", settings, cache_dir=tmp_path / "c")
    text.write_text("the cat sat\nthe cat sat\na dog ran\na dog ran\n")
    build_lexicon(text, tmp_path / "w", tmp_path / "l", settings, cache_dir=tmp_path / "c")
    assert sorted(calls[0]) == ["cat", "sat", "the"] and sorted(calls[1]) == ["a", "dog", "ran"]


def test_user_lexicon_extends_or_replaces(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("tomato soup\ntomato soup\n")
    user = tmp_path / "user.lst"
    user.write_text("tomato\tt ə m ɑː t oʊ\n")
    extended = LexiconSettings("en-us", user_lexicon=str(user), lexicon_mode="extend")
    build_lexicon(text, tmp_path / "w", tmp_path / "l", extended)
    assert read_lexicon(tmp_path / "l") == {"tomato": "t ə m ɑː t oʊ",
                                             "soup": phonemize_words(["soup"], "en-us")["soup"]}
    replaced = LexiconSettings("en-us", user_lexicon=str(user), lexicon_mode="replace")
    stats = build_lexicon(text, tmp_path / "w", tmp_path / "l", replaced)
    assert read_lexicon(tmp_path / "l") == {"tomato": "t ə m ɑː t oʊ"}
    assert stats["without pronunciation (dropped)"] == 1


def phone_fixture(tmp_path: Path) -> tuple[Path, Path]:
    text = tmp_path / "t.txt"
    text.write_text("a b\nb c\nc d\na b c\n")
    lexicon = tmp_path / "lexicon.lst"
    lexicon.write_text("a\tx y\nb\ty z\nc\tz\nd\tq\n")
    return text, lexicon


def test_pruning_drops_words_and_sentences(tmp_path):
    text, lexicon = phone_fixture(tmp_path)
    stats = build_phone_text(text, lexicon, tmp_path / "d", tmp_path / "f", tmp_path / "lm",
                             PhoneSettings(min_phones=2, sil_prob=0.0))
    assert stats["pruned_phones"] == 2  # x and q appear in one lexicon entry each
    assert read_lexicon(tmp_path / "f") == {"b": "y z", "c": "z"}
    assert (tmp_path / "lm").read_text() == "<SIL> y z z <SIL>\n"
    assert stats["sentences dropped (word not in filtered lexicon)"] == 3
    by_corpus = build_phone_text(text, lexicon, tmp_path / "d", tmp_path / "f", tmp_path / "lm",
                                 PhoneSettings(min_phones=2, count_by="corpus"))
    assert by_corpus["pruned_phones"] == 1  # corpus counts: x twice, q once


def test_silence_insertion_is_seeded(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("a a a a a a a a a a\n" * 200)
    lexicon = tmp_path / "l"
    lexicon.write_text("a\tx\n")

    def run(prob: float, seed: int) -> str:
        build_phone_text(text, lexicon, tmp_path / "d", tmp_path / "f", tmp_path / "lm",
                         PhoneSettings(min_phones=0, sil_prob=prob, seed=seed))
        return (tmp_path / "lm").read_text()

    assert run(0.25, 1) == run(0.25, 1) != run(0.25, 2)
    between = Counter(itertools.chain.from_iterable(x.split()[1:-1] for x in
                                                    run(0.25, 1).splitlines()))
    assert abs(between[SIL] / (200 * 9) - 0.25) < 0.03
    assert run(0.0, 1).splitlines()[0] == "<SIL> " + "x " * 10 + "<SIL>"
    assert run(1.0, 1).splitlines()[0] == "<SIL> " + " <SIL> ".join(["x"] * 10) + " <SIL>"


def test_real_book_text(tmp_path):
    book = shared("text", "pg1342_pride_and_prejudice.txt")
    sample = tmp_path / "sample.txt"
    sample.write_text("\n".join(book.read_text(encoding="utf-8").splitlines()[2000:4000]))
    counts = normalize_text([sample], tmp_path / "norm.txt", NormalizeSettings(casefold=True))
    assert counts["lines out"] > 1000
    stats = build_lexicon(tmp_path / "norm.txt", tmp_path / "w", tmp_path / "l",
                          LexiconSettings("en-us"))
    assert stats["in lexicon"] > 500


def test_tokens_espeak_reads_as_several_words_keep_their_phones_apart(tmp_path):
    """Digits and some hyphenated words are several words to espeak; glued together they made
    false phones ("dt", "iθ") that then dropped every sentence holding the token."""
    phones = phonemize_words(["123", "1984"], "en-us")
    assert phones["123"] == "w ʌ n h ʌ n d ɹ ɪ d t w ɛ n t i θ ɹ iː"
    assert phones["1984"].split()[:13] == "n aɪ n t iː n h ʌ n d ɹ ɪ d".split()[:13]
    text = tmp_path / "t.txt"
    text.write_text("we have 123 cats\nwe have 123 cats\nthe cats are 1984 cats\n" * 2)
    stats = build_lexicon(text, tmp_path / "w", tmp_path / "l", LexiconSettings("en-us"),
                          cache_dir=tmp_path / "c")
    assert stats["read by espeak as several words (phones joined)"] == 2
    lexicon = read_lexicon(tmp_path / "l")
    assert lexicon["123"] == phones["123"] and lexicon["1984"] == phones["1984"]
    spelled = phonemize_words(["one", "hundred", "twenty", "three", "nineteen", "eighty",
                               "four"], "en-us")
    singles = {p for pron in spelled.values() for p in pron.split()}
    assert {p for w in ("123", "1984") for p in lexicon[w].split()} <= singles
    # a second run reads them from the cache and counts them the same way
    again = build_lexicon(text, tmp_path / "w", tmp_path / "l", LexiconSettings("en-us"),
                          cache_dir=tmp_path / "c")
    assert again == stats and read_lexicon(tmp_path / "l") == lexicon


def test_a_megabyte_long_word_does_not_enter_the_lexicon(tmp_path, caplog):
    huge = "a" * 1_000_000
    text = tmp_path / "t.txt"
    text.write_text(f"the cat {huge}\nthe cat {huge}\n")
    with caplog.at_level("WARNING"):
        stats = build_lexicon(text, tmp_path / "w", tmp_path / "l", LexiconSettings("en-us"))
    assert stats[f"longer than {MAX_WORD_CHARS} characters (dropped)"] == 1
    assert set(read_lexicon(tmp_path / "l")) == {"the", "cat"}
    assert "longer than 100 characters" in caplog.text and len(caplog.text) < 2000
