"""reference-phones: word-only references phonemised like the unpaired text; given phones checked
against the phone inventory (Swedish, real espeak-ng)."""

from __future__ import annotations

import pytest

from w2vu.errors import W2vuError
from w2vu.text.lexicon import LexiconSettings, build_lexicon, read_lexicon
from w2vu.text.phones import PhoneSettings, build_phone_text
from w2vu.text.references import write_reference_phones

SWEDISH = ["Jag heter Anna och bor i Stockholm.", "Vi läser en bok om havet.",
           "Han köper bröd och mjölk i affären.", "Hon tycker om att simma i sjön."]


@pytest.fixture()
def text_stage(tmp_path):
    """The Swedish text stage's lexicon and inventory, as the workflow builds them."""
    text = tmp_path / "normalized.txt"
    text.write_text("".join(line.rstrip(".").lower() + "\n" for line in SWEDISH * 2))
    build_lexicon(text, tmp_path / "words.txt", tmp_path / "lexicon.lst", LexiconSettings("sv"),
                  cache_dir=tmp_path / "cache")
    build_phone_text(text, tmp_path / "lexicon.lst", tmp_path / "dict.phn.txt",
                     tmp_path / "lexicon_filtered.lst", tmp_path / "lm.txt",
                     PhoneSettings(min_phones=1))
    return tmp_path


def reference_phones(root, words: list[str], given: list[str], **kw):
    (root / "valid.wrd").write_text("".join(w + "\n" for w in words))
    (root / "valid.given.phn").write_text("".join(g + "\n" for g in given))
    settings = kw.pop("settings", LexiconSettings("sv"))
    stats = write_reference_phones(root / "valid.wrd", root / "valid.given.phn",
                                   root / "dict.phn.txt", root / "lexicon.lst",
                                   root / "valid.phn", settings, casefold=True,
                                   cache_dir=root / "cache", **kw)
    return stats, (root / "valid.phn").read_text().splitlines()


def test_word_references_are_phonemised_by_the_languages_lexicon(text_stage):
    lexicon = read_lexicon(text_stage / "lexicon.lst")
    stats, lines = reference_phones(text_stage, ["Vi läser en bok.", "", "Anna, simma!"],
                                    ["", "", ""])
    assert lines[0] == " ".join(lexicon[w] for w in ("vi", "läser", "en", "bok"))
    assert lines[1] == ""  # no reference: not scored
    assert lines[2] == f"{lexicon['anna']} {lexicon['simma']}"
    assert stats == {"phonemised": 2, "without a reference": 1}


def test_the_user_lexicon_wins_for_references_too(text_stage):
    user = text_stage / "user.tsv"
    user.write_text("bok\tb uː k\n")
    stats, lines = reference_phones(text_stage, ["bok"], [""],
                                    settings=LexiconSettings("sv", user_lexicon=str(user)))
    assert lines == ["b uː k"]


def test_given_phones_in_another_phone_set_stop_with_a_count(text_stage):
    raw_ipa = ["jɑːɡ hˈeːtɛr ˈanːa", "viː lˈɛːsɛr ɛn bˈuːk"]
    with pytest.raises(W2vuError, match=r"7 of 7 phone tokens \(7 of 7 types, e\.g\..*are not "
                                        r"in the language's phone inventory.*separated by spaces"):
        reference_phones(text_stage, ["jag heter anna", "vi läser en bok"], raw_ipa)


def test_given_phones_of_the_inventory_are_kept(text_stage):
    lexicon = read_lexicon(text_stage / "lexicon.lst")
    given = f"{lexicon['vi']} {lexicon['bok']}"
    stats, lines = reference_phones(text_stage, ["vi bok", "en bok"], [given, ""])
    assert lines == [given, f"{lexicon['en']} {lexicon['bok']}"]
    assert stats == {"given": 1, "phonemised": 1}
