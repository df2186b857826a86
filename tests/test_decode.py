"""WFST decoding of emissions over tiny HLG graphs, and the unsupervised choice of its settings.

Graphs come from `w2vu.text.graphs.build_graphs` on the hand-written dictionary, lexicon and bigram
ARPA of test_graphs.py; emissions are crafted frame by frame so that the right answer is known.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.test_graphs import LEXICON, PHONES, WORD_BIGRAMS, write_arpa
from w2vu.cli import main
from w2vu.decode.tune import choose, make_grid, read_choice, tune_decoding
from w2vu.decode.wfst import DecodeOptions, decode_split, scaled_emissions
from w2vu.errors import W2vuError
from w2vu.eval.metrics import phone_error_rate
from w2vu.eval.unsupervised import lm_perplexity
from w2vu.io.dictionary import read_fairseq_dict
from w2vu.io.features import write_features
from w2vu.io.tables import read_table
from w2vu.text.arpa import load_phone_lm
from w2vu.text.graphs import build_graphs

Frame = str | dict[str, float]


@pytest.fixture(scope="module")
def lang(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dictionary, lexicon, word ARPA and two graphs: `words` (blank <s>) and `words_sil`."""
    root = tmp_path_factory.mktemp("lang")
    (root / "dict.phn.txt").write_text("".join(f"{p} {9 - i}\n" for i, p in enumerate(PHONES)),
                                       encoding="utf-8")
    (root / "lexicon.lst").write_text("".join(f"{w}\t{p}\n" for w, p in LEXICON.items()),
                                      encoding="utf-8")
    write_arpa(root / "words.arpa", WORD_BIGRAMS)
    build_graphs(root / "dict.phn.txt", root / "words.arpa", root / "words",
                 lexicon=root / "lexicon.lst")
    build_graphs(root / "dict.phn.txt", root / "words.arpa", root / "words_sil",
                 lexicon=root / "lexicon.lst", silence="<SIL>")
    return root


@pytest.fixture(scope="module")
def symbols(lang: Path) -> list[str]:
    return read_fairseq_dict(lang / "dict.phn.txt")


def logprobs(frames: list[Frame], symbols: list[str], p: float = 0.9) -> np.ndarray:
    """Frames x dictionary log-probs. A string frame puts `p` on its symbol ('_' = `<s>`); a dict
    frame gives its symbols' probabilities. The rest is spread evenly over the other columns."""
    index = {s: i for i, s in enumerate(symbols)}
    out = np.zeros((len(frames), len(symbols)))
    for t, frame in enumerate(frames):
        probs = {frame: p} if isinstance(frame, str) else frame
        probs = {("<s>" if s == "_" else s): q for s, q in probs.items()}
        rest = (1 - sum(probs.values())) / (len(symbols) - len(probs))
        out[t] = rest
        for s, q in probs.items():
            out[t, index[s]] = q
    return np.log(out).astype(np.float32)


def spell(text: str) -> list[Frame]:
    return list(text.split())


def write_emissions(prefix: Path, utterances: list[np.ndarray], dim: int) -> Path:
    write_features(prefix, utterances, dim=dim)
    return prefix


def decode_one(lang: Path, symbols: list[str], frames: list[Frame], graph: str = "words",
               **options: object) -> list[str]:
    prefix = write_emissions(lang / "one" / "x.emissions", [logprobs(frames, symbols)],
                             len(symbols))
    hyps = decode_split(prefix, lang / graph, lang / "one" / "x.txt", DecodeOptions(**options))
    assert len(hyps) == 1
    return hyps[0]


# "w ɜː ? d" with ? = blank 0.6 / l 0.35: the frame argmax spells "word", "world" needs the l.
AMBIGUOUS = spell("_ h h ɛ _ l oʊ oʊ _ w ɜː ɜː") + [{"_": 0.6, "l": 0.35}] + spell("d d _")
# "h ɛ l ?" with ? = oʊ 0.9 / blank 0.05: "hello" unless blanks are boosted (then "hell").
HELLO_OR_HELL = spell("h ɛ ɛ l") + [{"oʊ": 0.9, "_": 0.05}]


def test_decode_split_spells_words_with_blanks_repeats_and_empty_lines(
        lang: Path, symbols: list[str]) -> None:
    utterances = [logprobs(spell("_ h h ɛ _ l l oʊ oʊ _ _ w w ɜː l _ d _"), symbols),
                  np.zeros((0, len(symbols)), dtype=np.float32),
                  logprobs(spell("w _ ɜː d d"), symbols),
                  logprobs(spell("h ɛ ɛ l _"), symbols)]
    prefix = write_emissions(lang / "split" / "valid.emissions", utterances, len(symbols))
    out = lang / "split" / "valid.txt"
    hyps = decode_split(prefix, lang / "words", out)
    assert hyps == [["hello", "world"], [], ["word"], ["hell"]]
    assert out.read_text(encoding="utf-8") == "hello world\n\nword\nhell\n"


def test_lm_corrects_ambiguous_frame_and_acoustic_scale_moves_it_back(
        lang: Path, symbols: list[str]) -> None:
    # The bigram LM prefers "hello world" to "hello word" by about 1 in log10.
    assert decode_one(lang, symbols, AMBIGUOUS) == ["hello", "world"]
    # A large acoustic scale lets the frame argmax win over the LM.
    assert decode_one(lang, symbols, AMBIGUOUS, acoustic_scale=10.0) == ["hello", "word"]


def test_blank_weight_turns_an_uncertain_frame_into_blank(lang: Path, symbols: list[str]) -> None:
    assert decode_one(lang, symbols, HELLO_OR_HELL) == ["hello"]
    assert decode_one(lang, symbols, HELLO_OR_HELL, blank_weight=-3.0) == ["hello"]
    assert decode_one(lang, symbols, HELLO_OR_HELL, blank_weight=3.0) == ["hell"]
    # "set" puts the blank's (normalised) log-prob at the weight: 0 = certain blank.
    assert decode_one(lang, symbols, HELLO_OR_HELL, blank_weight=-1e-3,
                      blank_mode="set") == ["hell"]
    assert decode_one(lang, symbols, HELLO_OR_HELL, blank_weight=-20.0,
                      blank_mode="set") == ["hello"]


def test_sil_as_blank_weights_the_sil_column(lang: Path, symbols: list[str]) -> None:
    frames = spell("<SIL> <SIL> h ɛ l") + [{"oʊ": 0.7, "<SIL>": 0.2}] + spell("<SIL>")
    assert decode_one(lang, symbols, frames, graph="words_sil") == ["hello"]
    # The weight goes to <s> unless <SIL> is the blank.
    assert decode_one(lang, symbols, frames, graph="words_sil", blank_weight=3.0) == ["hello"]
    assert decode_one(lang, symbols, frames, graph="words_sil", blank_weight=3.0,
                      sil_is_blank=True) == ["hell"]
    with pytest.raises(W2vuError, match="does not absorb <SIL>"):
        decode_one(lang, symbols, frames, graph="words", sil_is_blank=True)


def test_scaled_emissions_add_matches_logit_shift() -> None:
    logits = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    options = DecodeOptions(acoustic_scale=0.5, blank_weight=2.0, blank_mode="add")
    shifted = logits + np.array([2.0, 0.0, 0.0])
    expected = 0.5 * (shifted - np.log(np.exp(shifted).sum(1, keepdims=True)))
    np.testing.assert_allclose(scaled_emissions(logp, 0, options), expected, rtol=1e-5)
    assert np.allclose(scaled_emissions(logp, 0, DecodeOptions(acoustic_scale=1.0)), logp)


def test_bad_inputs(lang: Path, symbols: list[str]) -> None:
    prefix = write_emissions(lang / "bad" / "x.emissions",
                             [logprobs(spell("h ɛ l oʊ"), symbols)[:, :-1]], len(symbols) - 1)
    with pytest.raises(W2vuError, match=r"11 columns .*tokens\.txt.* 12 dictionary symbols"):
        decode_split(prefix, lang / "words", lang / "bad" / "x.txt")
    with pytest.raises(W2vuError, match="missing HLG.fst, tokens.txt, words.txt"):
        decode_split(prefix, lang / "nowhere", lang / "bad" / "x.txt")
    (lang / "broken").mkdir()
    for name in ("tokens.txt", "words.txt"):
        (lang / "broken" / name).write_bytes((lang / "words" / name).read_bytes())
    (lang / "broken" / "HLG.fst").write_text("not an fst\n", encoding="utf-8")
    with pytest.raises(W2vuError, match="not a readable"):
        decode_split(prefix, lang / "broken", lang / "bad" / "x.txt")
    with pytest.raises(W2vuError, match="blank_mode"):
        DecodeOptions(blank_mode="replace")
    assert not (lang / "bad" / "x.txt").exists()


def test_parallel_decoding_matches_serial(lang: Path, symbols: list[str]) -> None:
    utterances = [logprobs(AMBIGUOUS, symbols), logprobs(HELLO_OR_HELL, symbols),
                  logprobs(spell("w _ ɜː d d"), symbols)] * 3
    prefix = write_emissions(lang / "par" / "x.emissions", utterances, len(symbols))
    serial = decode_split(prefix, lang / "words", lang / "par" / "serial.txt")
    parallel = decode_split(prefix, lang / "words", lang / "par" / "parallel.txt", threads=2)
    assert parallel == serial == [["hello", "world"], ["hello"], ["word"]] * 3


def tune_inputs(lang: Path, symbols: list[str]) -> tuple[Path, Path]:
    """Emissions of AMBIGUOUS (argmax "hello word") plus two clear utterances, and the Viterbi
    transcript (frame argmax, repeats merged, no blanks)."""
    folder = lang / "tune"
    prefix = write_emissions(folder / "valid.emissions",
                             [logprobs(AMBIGUOUS, symbols), logprobs(spell("w _ ɜː d d"), symbols),
                              logprobs(spell("h ɛ l oʊ"), symbols)], len(symbols))
    viterbi = folder / "valid.txt"
    viterbi.write_text("h ɛ l oʊ w ɜː d\nw ɜː d\nh ɛ l oʊ\n", encoding="utf-8")
    return prefix, viterbi


def test_tuning_picks_lowest_score_and_writes_table(lang: Path, symbols: list[str]) -> None:
    prefix, viterbi = tune_inputs(lang, symbols)
    out = lang / "tune"
    grid = make_grid([0.5, 10.0], [0.0, 3.0])
    chosen = tune_decoding(prefix, lang / "words", viterbi, lang / "lexicon.lst",
                           lang / "words.arpa", grid, out / "grid.tsv", out / "choice.json",
                           min_vt_uer=0.0, out_txt=out / "best.txt")
    rows = read_table(out / "grid.tsv", ["acoustic_scale", "blank_weight", "score", "lm_ppl",
                                         "vt_uer", "chosen"])
    assert [(float(r["acoustic_scale"]), float(r["blank_weight"])) for r in rows] == grid
    scores = [float(r["score"]) for r in rows]
    best = int(np.argmin(scores))
    assert [r["chosen"] for r in rows] == ["1" if i == best else "0" for i in range(len(rows))]
    assert (chosen.acoustic_scale, chosen.blank_weight) == grid[best]
    # With no floor on the UER, the point that reproduces the Viterbi phones exactly wins.
    assert chosen.acoustic_scale == 10.0 and float(rows[best]["vt_uer"]) == 0.0
    assert out.joinpath("best.txt").read_text(encoding="utf-8") == "hello word\nword\nhello\n"
    # The factors are the reference's: ln(word-LM perplexity) x UER of the phonemised words.
    hyps = [line.split() for line in (out / "best.txt").read_text().splitlines()]
    ppl = lm_perplexity(hyps, load_phone_lm(lang / "words.arpa"))
    assert float(rows[best]["lm_ppl"]) == pytest.approx(ppl, rel=1e-4)
    first = rows[0]  # acoustic scale 0.5: "hello world" for the ambiguous utterance
    uer = phone_error_rate([["h", "ɛ", "l", "oʊ", "w", "ɜː", "l", "d"], ["w", "ɜː", "d"],
                            ["h", "ɛ", "l", "oʊ"]],
                           [line.split() for line in viterbi.read_text().splitlines()])
    assert float(first["vt_uer"]) == pytest.approx(uer, rel=1e-4)
    assert float(first["score"]) == pytest.approx(math.log(float(first["lm_ppl"])) * uer,
                                                  rel=1e-4)
    choice = json.loads((out / "choice.json").read_text(encoding="utf-8"))
    assert choice["acoustic_scale"] == 10.0 and choice["grid_points"] == 4
    assert read_choice(out / "choice.json") == chosen


def test_tune_command_warns_when_the_choice_is_at_the_grid_edge(lang: Path, symbols: list[str],
                                                                 capsys) -> None:
    prefix, viterbi = tune_inputs(lang, symbols)
    out = lang / "tune_edge"
    args = ["wfst-tune", "--emissions", str(prefix), "--graph-dir", str(lang / "words"),
            "--viterbi", str(viterbi), "--lexicon", str(lang / "lexicon.lst"),
            "--lm", str(lang / "words.arpa"), "--blank-weights", "0",
            "--out-tsv", str(out / "grid.tsv"), "--out-json", str(out / "choice.json")]
    main([*args, "--acoustic-scales", "0.5", "2", "10"])
    # 10 reproduces the Viterbi phones (the test above), so the largest scale wins.
    err = capsys.readouterr().err
    assert "acoustic scale 10 is the largest of those tried (0.5, 2, 10)" in err
    assert "config decode.acoustic_scales" in err
    main([*args, "--acoustic-scales", "0.5", "10", "20"])
    assert read_choice(out / "choice.json").acoustic_scale == 10.0
    assert "widen the grid" not in capsys.readouterr().err


def test_tuning_uer_floor_lets_the_lm_decide(lang: Path, symbols: list[str]) -> None:
    prefix, viterbi = tune_inputs(lang, symbols)
    out = lang / "tune_floor"
    chosen = tune_decoding(prefix, lang / "words", viterbi, lang / "lexicon.lst",
                           lang / "words.arpa", make_grid([10.0, 0.5], [0.0]),
                           out / "grid.tsv", out / "choice.json", min_vt_uer=0.5)
    rows = read_table(out / "grid.tsv")
    # Both UERs are under the floor, so the lower perplexity ("hello world") wins.
    assert float(rows[0]["lm_ppl"]) > float(rows[1]["lm_ppl"])
    assert chosen.acoustic_scale == 0.5 and [r["chosen"] for r in rows] == ["0", "1"]


def test_tuning_rejects_misaligned_viterbi_transcript(lang: Path, symbols: list[str]) -> None:
    prefix, viterbi = tune_inputs(lang, symbols)
    short = lang / "tune" / "short.txt"
    short.write_text("h ɛ l oʊ\n", encoding="utf-8")
    with pytest.raises(W2vuError, match="has 1 lines but"):
        tune_decoding(prefix, lang / "words", short, lang / "lexicon.lst", lang / "words.arpa",
                      make_grid(), lang / "x.tsv", lang / "x.json")
    with pytest.raises(W2vuError, match="grid is empty"):
        tune_decoding(prefix, lang / "words", viterbi, lang / "lexicon.lst",
                      lang / "words.arpa", [], lang / "x.tsv", lang / "x.json")


def test_choose_ignores_nan_and_keeps_first_of_ties() -> None:
    from w2vu.decode.tune import GridPoint

    def point(score: float) -> GridPoint:
        return GridPoint(DecodeOptions(), score, 1.0, 0.0, 0, 0, 0.0)

    assert choose([point(math.nan), point(2.0), point(1.0), point(1.0)]) == 2
