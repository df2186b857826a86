"""digits-corpus: real FSDD recordings joined into digit strings, split by speaker, reproducible."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from tests.conftest import REPO, shared
from tests.workflow_helpers import planned_jobs, snakemake
from w2vu.digits.corpus import SAMPLE_RATE, WORDS, DigitsSettings, build_digits_corpus
from w2vu.errors import W2vuError
from w2vu.io.tables import read_table, write_table

SPEAKERS = ("george", "jackson", "theo")


@pytest.fixture
def small_fsdd(tmp_path: Path) -> Path:
    """A transcripts.tsv of 3 speakers x 2 takes of every digit, pointing at the real files."""
    fsdd = shared("fsdd")
    rows = [dict(row, path=str(fsdd / row["path"]))
            for row in read_table(fsdd / "transcripts.tsv")
            if row["speaker"] in SPEAKERS and row["index"] in ("0", "1")]
    folder = tmp_path / "fsdd"
    folder.mkdir()
    write_table(folder / "transcripts.tsv", list(rows[0]), rows)
    return folder


def build(fsdd: Path, out: Path, **changes) -> tuple[list[dict[str, str]], str, str]:
    settings = DigitsSettings(**{"test_speakers": ("theo",), "valid_fraction": 0.3,
                                 "text_lines": 300, **changes})
    build_digits_corpus(fsdd, out / "wav", out / "audio.tsv", out / "text.txt", settings)
    digest = hashlib.sha256()
    for path in sorted((out / "wav").rglob("*.wav")):
        digest.update(path.name.encode() + path.read_bytes())
    return read_table(out / "audio.tsv"), (out / "text.txt").read_text(), digest.hexdigest()


def test_same_seed_same_bytes(small_fsdd, tmp_path):
    first = build(small_fsdd, tmp_path / "a", seed=1)
    assert build(small_fsdd, tmp_path / "b", seed=1) == first
    assert build(small_fsdd, tmp_path / "c", seed=2)[2] != first[2]


def test_uniform_every_recording_once_split_by_speaker_text_unspoken(small_fsdd, tmp_path):
    rows, text, _ = build(small_fsdd, tmp_path, grammar="uniform")
    for speaker in SPEAKERS:
        words = [w for r in rows if r["speaker"] == speaker for w in r["transcript"].split()]
        assert sorted(words) == sorted(WORDS * 2)
    assert {r["split"] for r in rows if r["speaker"] == "theo"} == {"test"}
    assert {r["split"] for r in rows if r["speaker"] != "theo"} == {"train", "valid"}
    assert all(len(r["transcript"].split()) <= 6 for r in rows)
    lines = text.splitlines()
    assert len(lines) == 300 and all(3 <= len(line.split()) <= 6 for line in lines)
    assert not {r["transcript"] for r in rows} & set(lines)
    assert all(set(line.split()) <= set(WORDS) for line in lines)
    assert all(r["phones"] for r in rows)
    audio, rate = sf.read(tmp_path / rows[0]["path"])
    assert rate == SAMPLE_RATE and len(audio) > 0.4 * len(rows[0]["transcript"].split()) * rate


def next_word_shares(lines: list[str]) -> list[float]:
    """For each word, the share of its followers that is its most frequent follower."""
    follows: dict[str, Counter[str]] = defaultdict(Counter)
    for line in lines:
        words = line.split()
        for a, b in zip(words, words[1:]):
            follows[a][b] += 1
    return [c.most_common(1)[0][1] / c.total() for c in follows.values()]


def test_chain_grammar_gives_words_statistics_spoken_and_unpaired(small_fsdd, tmp_path):
    rows, text, _ = build(small_fsdd, tmp_path, text_lines=2000)
    for speaker in SPEAKERS:  # as many digits as the speaker has takes
        words = Counter(w for r in rows if r["speaker"] == speaker for w in r["transcript"].split())
        assert words.total() == 20 and set(words) <= set(WORDS)
    lines = text.splitlines()
    assert not {r["transcript"] for r in rows} & set(lines)
    shares = next_word_shares(lines)  # successor 0.7: 0.7 + 0.3 / 10 follow their successor
    assert len(shares) == 10 and min(shares) > 0.6
    firsts = Counter(line.split()[0] for line in lines)  # weighted 1/rank: 34% for the first
    assert 0.28 < firsts.most_common(1)[0][1] / len(lines) < 0.40
    uniform = build(small_fsdd, tmp_path / "u", grammar="uniform", text_lines=2000)[1]
    assert max(next_word_shares(uniform.splitlines())) < 0.25


def test_passes_speak_the_train_speakers_takes_again_in_other_strings(small_fsdd, tmp_path):
    once = build(small_fsdd, tmp_path / "once")[0]
    for grammar in ("chain", "uniform"):
        rows = build(small_fsdd, tmp_path / grammar, grammar=grammar, passes=3)[0]
        for speaker in SPEAKERS:
            spoken = [r for r in rows if r["speaker"] == speaker]
            words = Counter(w for r in spoken for w in r["transcript"].split())
            passes = 1 if speaker == "theo" else 3  # the test speaker's takes once
            assert words.total() == 20 * passes
            if grammar == "uniform":  # every take (two of each digit) exactly `passes` times
                assert words == Counter({w: 2 * passes for w in WORDS})
        strings = [r["transcript"] for r in rows if r["speaker"] != "theo"]
        assert len(set(strings)) > len([r for r in once if r["speaker"] != "theo"])
    with pytest.raises(W2vuError, match="passes must be 1 or more"):
        DigitsSettings(passes=0)


def test_bad_settings_name_the_problem(small_fsdd, tmp_path):
    with pytest.raises(W2vuError, match="test speaker.*nobody"):
        build(small_fsdd, tmp_path, test_speakers=("nobody",))
    with pytest.raises(W2vuError, match="transcripts.tsv not found"):
        build(tmp_path / "missing", tmp_path)
    with pytest.raises(W2vuError, match="min_digits"):
        DigitsSettings(min_digits=5, max_digits=3)
    with pytest.raises(W2vuError, match="grammar must be one of chain, uniform"):
        DigitsSettings(grammar="markov")
    table = small_fsdd / "transcripts.tsv"
    rows = [r for r in read_table(table) if not (r["speaker"] == "george" and r["text"] == "six")]
    write_table(table, list(rows[0]), rows)
    with pytest.raises(W2vuError, match="speaker george has no recording of six"):
        build(small_fsdd, tmp_path / "lacking")


def digits_config(workdir: Path, fsdd: Path) -> None:
    """config/digits.yaml as shipped, with its FSDD folder made absolute."""
    config = yaml.safe_load((REPO / "config" / "digits.yaml").read_text(encoding="utf-8"))
    config["languages"]["digits"]["digits"]["fsdd"] = str(fsdd)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def test_digits_config_plans_the_whole_pipeline(tmp_path):
    digits_config(tmp_path, shared("fsdd"))
    jobs = planned_jobs(tmp_path)
    assert jobs["digits_corpus"] == jobs["inventory"] == jobs["score"] == 1
    assert jobs["gan_train"] >= 1 and jobs["wfst_decode"] == jobs["hmm_decode"] == 3
    digits_config(tmp_path, tmp_path / "no-fsdd")
    done = snakemake(tmp_path, "-n", check=False)
    assert done.returncode != 0
    assert "languages.digits.digits.fsdd" in done.stdout + done.stderr
