"""Known-answer GAN inputs (w2vu.gan.known_answer) and the answer they hold.

The builder's files are checked directly. On the bundled book's phone text, a generator set to
the known answer (``oracle_generator_weight``) must transcribe the "audio" almost perfectly
through the real generation and scoring steps, and must not when the features are blind (every
phone the same vector): the set carries its answer, and the check can tell when it does not.
No test trains the GAN to the answer: the runs measured to learn it from a random start sat on a
plateau for 45,000-80,000 updates first (bench/RESULTS.md, "Known-answer GAN: it learns"), far
beyond a test's budget. What is tested is
the control beside it: matching the text's phone transitions directly repairs a near answer that
the GAN does not (bench/known_answer_bigram.py), so the set's statistics do point to the answer.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from w2vu.errors import W2vuError
from w2vu.gan.known_answer import (
    KnownAnswerPaths,
    KnownAnswerSettings,
    build_known_answer,
    phone_classes,
)
from w2vu.io.features import iter_unit_lines, open_features

REPO = Path(__file__).resolve().parent.parent
SENTENCES = [
    "<SIL> a b c <SIL> d e <SIL>",
    "<SIL> a a b <SIL>",
    "<SIL> c d e f g <SIL> a <SIL>",
    "<SIL> g f e <SIL>",
    "<SIL> b c d <SIL> e a <SIL>",
    "<SIL> a e <SIL>",
]


def _w2vu(*args: str) -> None:
    # espeak keeps global state: the text steps run in their own process (as in the workflow)
    subprocess.run([sys.executable, "-m", "w2vu", *args], check=True, cwd=REPO,
                   capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def book_phones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The book's unpaired half as phone text, through the library's own text commands."""
    work = tmp_path_factory.mktemp("book")
    _w2vu("demo-corpus", "--out-dir", str(work / "wav"), "--out-table", str(work / "a.tsv"),
          "--out-text", str(work / "book.txt"), "--minutes", "0")
    _w2vu("normalize", "--inputs", str(work / "book.txt"), "--out", str(work / "norm.txt"),
          "--casefold")
    _w2vu("lexicon", "--text", str(work / "norm.txt"), "--language", "en-us", "--out-words",
          str(work / "words.txt"), "--out-lexicon", str(work / "lex.lst"),
          "--min-word-count", "1")
    _w2vu("phones", "--text", str(work / "norm.txt"), "--lexicon", str(work / "lex.lst"),
          "--out-dict", str(work / "dict.phn.txt"), "--out-lexicon", str(work / "lexf.lst"),
          "--out-phone-text", str(work / "lm.phones.filtered.txt"))
    return work / "lm.phones.filtered.txt"


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_builder_layout_split_and_determinism(tmp_path: Path) -> None:
    text = tmp_path / "phones.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    settings = KnownAnswerSettings(phones=3, frames_per_phone=1.5, noise=0.1, dim=8,
                                   km_clusters=4, seed=3)
    summary = build_known_answer(text, tmp_path / "a", settings)
    build_known_answer(text, tmp_path / "b", settings)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")  # same settings, same bytes
    paths = KnownAnswerPaths(tmp_path / "a")
    feats = open_features(paths.features)
    refs = paths.phn.read_text(encoding="utf-8").splitlines()
    unpaired = paths.text.read_text(encoding="utf-8").splitlines()
    assert len(feats) == len(refs) == summary["spoken_sentences"] == 3
    assert len(unpaired) == summary["text_sentences"] == 3
    # the spoken and the text halves are disjoint sentences of the source (after folding)
    classes = phone_classes([s.split() for s in SENTENCES], 3)
    folded = [" ".join(p if p == "<SIL>" else classes[p] for p in s.split()) for s in SENTENCES]
    spoken = {" ".join(p for p in s.split() if p != "<SIL>") for s in folded} - {
        " ".join(p for p in u.split() if p != "<SIL>") for u in unpaired}
    assert set(refs) <= spoken
    for ref, length in zip(refs, feats.lengths):
        phones_with_sil = len(ref.split())
        assert phones_with_sil <= length <= 2 * (phones_with_sil + 4)  # 1-2 frames, SILs too
    assert [len(k) for k in iter_unit_lines(paths.km)] == [2 * n for n in feats.lengths]
    assert summary["phones"] == 3 and set(summary["classes"]) == {"a", "b", "e"}
    symbols = [line.split()[0] for line in paths.dictionary.read_text().splitlines()]
    assert symbols[-1] == "<SIL>" and sorted(symbols[:-1]) == ["a", "b", "e"]
    assert "\\data\\" in paths.lm.read_text()
    assert json.loads(paths.summary.read_text())["settings"]["seed"] == 3


def test_phone_classes_fold_by_frequency_rank() -> None:
    sentences = [["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + ["e"]]
    assert phone_classes(sentences, 2) == {"a": "a", "b": "b", "c": "a", "d": "b", "e": "a"}
    assert phone_classes(sentences, 0) == {p: p for p in "abcde"}
    assert phone_classes(sentences, 2, "blocks") == {"a": "a", "b": "a", "c": "a", "d": "d",
                                                     "e": "d"}


@pytest.mark.parametrize("kwargs, option", [({"phones": 1}, "--phones"),
                                            ({"frames_per_phone": 0.5}, "--frames-per-phone"),
                                            ({"fold": "random"}, "--fold"),
                                            ({"audio_fraction": 1.0}, "--audio-fraction")])
def test_bad_settings_name_the_option(tmp_path: Path, kwargs: dict, option: str) -> None:
    text = tmp_path / "phones.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    with pytest.raises(W2vuError, match=option):
        build_known_answer(text, tmp_path / "out", KnownAnswerSettings(**kwargs))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("blind, bound", [(False, 0.02), (True, None)])
def test_oracle_generator_reads_the_answer(book_phones: Path, tmp_path: Path, blind: bool,
                                           bound: float | None) -> None:
    import torch

    from w2vu.eval.score import most_frequent_phone_baseline, score_files
    from w2vu.gan.generate import generate
    from w2vu.gan.known_answer import oracle_generator_weight
    from w2vu.gan.run_state import model_state
    from w2vu.gan.trainer import TrainConfig, build_model, save_best
    from w2vu.io.dictionary import load_phone_dictionary

    settings = KnownAnswerSettings(dim=64, noise=0.3, km_clusters=0, blind=blind, seed=0)
    lines = book_phones.read_text(encoding="utf-8").splitlines()[:400]  # keeps the test fast
    (tmp_path / "phones.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_known_answer(tmp_path / "phones.txt", tmp_path / "set", settings)
    paths = KnownAnswerPaths(tmp_path / "set")
    dictionary = load_phone_dictionary(paths.dictionary)
    config = TrainConfig(variant=1, discriminator_dim=8)
    model = build_model(config, len(dictionary), settings.dim)
    conv = model.generator.proj[1]
    weight = oracle_generator_weight(paths.root, list(dictionary.symbols), conv.kernel_size[0])
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight))
    save_best(tmp_path / "oracle.pt", model_state(model), 0, {}, config, dictionary)
    generate(tmp_path / "oracle.pt", paths.features, paths.dictionary, tmp_path / "gen", "train",
             device="cpu")
    per = score_files(tmp_path / "gen" / "train.txt", paths.phn, "per").rate
    baseline = most_frequent_phone_baseline(paths.text, paths.phn, tmp_path / "base.txt").rate
    if bound is not None:
        assert per < bound < baseline
    else:  # blind features: one vector for every phone, nothing to read
        assert per > 0.9 * baseline


def test_oracle_with_wrong_classes_maps_that_share_in_a_cycle(tmp_path: Path) -> None:
    """``wrong``: that share of the classes (never ``<SIL>``) read as another class's phone."""
    from w2vu.gan.known_answer import draw_class_vectors, oracle_generator_weight

    text = tmp_path / "phones.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    settings = KnownAnswerSettings(dim=16, noise=0.1, km_clusters=0, seed=2)
    summary = build_known_answer(text, tmp_path / "set", settings)
    classes = sorted(summary["classes"]) + ["<SIL>"]
    symbols = ["<s>", "<pad>", "</s>", "<unk>", *classes]
    vectors = draw_class_vectors(np.random.default_rng([2, 0]), len(classes), settings)

    def heard(wrong: float) -> list[str]:
        weight = oracle_generator_weight(tmp_path / "set", symbols, 4, 5.0, wrong, seed=7)
        return [symbols[i] for i in (vectors @ weight[:, :, 2].T).argmax(1)]

    assert heard(0.0) == classes
    mixed = heard(0.4)  # 7 classes + <SIL>: round(2.8) = 3 of them in a cycle
    assert mixed[-1] == "<SIL>" and sorted(mixed) == sorted(classes)
    assert sum(h != c for h, c in zip(mixed, classes)) == 3
    assert heard(0.4) == mixed  # the same classes for the same seed
    with pytest.raises(W2vuError, match="wrong"):
        heard(1.5)


def test_gradient_bench_measures_every_term(tmp_path: Path) -> None:
    """bench/known_answer_gradient.py runs on a tiny set and prints a rank row per loss term."""
    text = tmp_path / "phones.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "known_answer_gradient.py"), "--phone-text",
         str(text), "--dim", "8", "--discriminator-dim", "4", "--batch-size", "2",
         "--wrong", "0.5", "--warm", "0", "2", "--batches", "1", "--hard",
         "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines()
            if line.strip().split(" ")[0] in ("dense_g", "code_pen", "smoothness", "all")]
    assert len(rows) == 8, done.stdout
    assert all(1.0 <= float(r[1]) <= 12.0 for r in rows), done.stdout  # V = 4 + 7 + <SIL>
    assert "after 2 discriminator updates" in done.stdout


@pytest.mark.parametrize("start", ["random", "oracle"])
def test_bench_runs_the_real_trainer_from_either_start(tmp_path: Path, start: str) -> None:
    """bench/known_answer.py on a tiny set: a curve row per chunk, both decodes, the JSON; the
    oracle start (classes right) decodes almost perfectly at update 0, a random one does not."""
    text = tmp_path / "phones.txt"
    text.write_text("\n".join(SENTENCES * 4) + "\n", encoding="utf-8")
    out = tmp_path / "ka.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "known_answer.py"), "--phone-text", str(text),
         "--min-phones", "1", "--dim", "16", "--noise", "0.1", "--batch-size", "4",
         "--discriminator-dim", "4", "--eval-batch-size", "4", "--seeds", "1", "--updates", "4",
         "--validate-every", "2", "--threads", "1", "--start", start, "--json", str(out),
         "--svg", str(tmp_path / "ka.svg"), "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())["results"][0]
    assert [p["update"] for p in result["curve"]] == [0, 2, 4]
    figure = ElementTree.parse(tmp_path / "ka.svg").getroot()
    assert "seed 1" in "".join(figure.itertext())
    assert 0.0 <= result["selected_per"] and 0.0 <= result["last_per"]
    references = (tmp_path / "work" / "data" / "train.phn").read_text().split()
    assert sum(v["count"] for v in result["phones"].values()) == len(references)
    assert set(result["phones"]) == set(references) and "last decode:" in done.stdout
    if start == "oracle":  # only the repeated phone ("a a") is lost: decoding merges repeats
        assert result["curve"][0]["per"] < 0.05
        return
    assert result["curve"][0]["per"] > 0.2
    # the same --work-dir again: the kept run goes on from update 4, and keeps its checkpoints
    args = [*done.args[:done.args.index("--updates") + 1], "6",
            *done.args[done.args.index("--updates") + 2:], "--keep-checkpoints"]
    again = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout and "at update 4" in again.stdout
    result = json.loads(out.read_text())["results"][0]
    assert [p["update"] for p in result["curve"]] == [0, 2, 4, 6]  # earlier rows kept
    assert [p["seconds"] is None for p in result["curve"]] == [False, True, True, False]
    assert result["resumed_at"] == 4 and result["updates"] == 2
    assert (tmp_path / "work" / "run-seed1" / "checkpoint_6.pt").exists()


@pytest.mark.parametrize("lr", [0.01, 0.0])
def test_bigram_control_repairs_a_near_answer_and_not_when_frozen(
        book_phones: Path, tmp_path: Path, lr: float) -> None:
    """bench/known_answer_bigram.py: matching the text's phone transitions pulls a frame
    classifier with 30% of its classes mapped wrongly back to the answer on the book's set; with
    the learning rate at 0 (learning cut) the PER stays where it started."""
    out = tmp_path / "bigram.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "known_answer_bigram.py"), "--phone-text",
         str(book_phones), "--dim", "64", "--noise", "0.1", "--start", "oracle", "--wrong", "0.3",
         "--kernel", "1", "--steps", "100", "--every", "50", "--lr", str(lr), "--json", str(out),
         "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    first, last = result["curve"][0], result["curve"][-1]
    assert [p["step"] for p in result["curve"]] == [0, 50, 100]
    assert 0.2 < first["per"] < 0.4  # 17 of 57 classes wrong
    if lr:
        assert last["per"] < 0.05 and last["loss"] < first["loss"]
    else:
        assert last["per"] == first["per"]
    assert result["floor"] < result["oracle"] < first["loss"]
