"""HMM self-training: training, alignment, decoding with the phone LM, unsupervised selection."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from devkit.phone_corpus import build_phone_corpus, unpaired_phone_sentences
from w2vu.errors import W2vuError
from w2vu.eval.metrics import phone_error_rate
from w2vu.io.features import write_features
from w2vu.kaldi_stack import kaldi_hmm_gmm as khg
from w2vu.selftrain.corrupt import corrupt_lines
from w2vu.selftrain.hmm.align import align_hmm
from w2vu.selftrain.hmm.decode import DecodeConfig, decode_hmm
from w2vu.selftrain.hmm.mixup import mix_up
from w2vu.selftrain.hmm.model import HmmConfig, add_deltas, load_hmm
from w2vu.selftrain.hmm.train import train_hmm
from w2vu.selftrain.hmm.tune import select_lm_weight
from w2vu.text.ngram import estimate_arpa

PHONES = ["a", "b", "c", "d", "e"]
CORPUS_MINUTES = 6.0  # 2 minutes (22 utterances) are too few to average 35% label noise out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Gaussian frames per phone with known segments, silence at both ends."""
    out = tmp_path_factory.mktemp("hmm-synth")
    rng = np.random.default_rng(0)
    means = {p: rng.normal(0, 3, 13) for p in [*PHONES, "<SIL>"]}
    utts, labels, frames_truth = [], [], []
    for _ in range(60):
        seq = list(rng.choice(PHONES, size=rng.integers(3, 7)))
        segs = ([("<SIL>", int(rng.integers(5, 15)))] + [(p, int(rng.integers(3, 12))) for p in seq]
                + [("<SIL>", int(rng.integers(5, 15)))])
        utts.append(np.concatenate([means[p] + rng.normal(0, 1, (n, 13)) for p, n in segs]
                                   ).astype(np.float32))
        labels.append(seq)
        frames_truth.append([p for p, n in segs for _ in range(n)])
    write_features(out / "feats", utts)
    (out / "labels.txt").write_text("".join(" ".join(x) + "\n" for x in labels), "utf-8")
    (out / "dict.phn.txt").write_text("".join(f"{p} 10\n" for p in PHONES) + "<SIL> 0\n",
                                      "utf-8")
    return {"dir": out, "labels": labels, "truth": frames_truth, "means": means}


def test_training_raises_likelihood_and_recovers_boundaries(synthetic, caplog) -> None:
    out = synthetic["dir"]
    with caplog.at_level(logging.INFO, logger="w2vu.selftrain.hmm"):
        report = train_hmm(out / "feats", out / "labels.txt", out / "dict.phn.txt",
                           out / "model.pkl", HmmConfig(gaussians=40, delta_order=0))
    assert sum("log-likelihood per frame" in r.message for r in caplog.records) == 40
    curve = report.loglike_per_frame
    assert curve[-1] > curve[0] + 5.0 and curve[-1] >= max(curve[:5])
    assert report.used == 60 and report.failed_alignments[-1] == 0
    model = load_hmm(out / "model.pkl")
    aligned = align_hmm(model, out / "feats", synthetic["labels"])
    accuracy = np.mean([np.mean(np.array(a) == np.array(t))
                        for a, t in zip(aligned, synthetic["truth"])])
    assert accuracy > 0.97, accuracy


def test_decoding_synthetic_with_lm(synthetic) -> None:
    out = synthetic["dir"]
    if not (out / "model.pkl").exists():
        pytest.skip("needs the model of the training test")
    estimate_arpa(["<SIL> " + " ".join(x) + " <SIL>" for x in synthetic["labels"]], 2,
                  out / "lm.arpa")
    hyps = decode_hmm(out / "model.pkl", out / "feats", out / "lm.arpa", [1.0, 10.0],
                      out / "dec")
    # Only repeated phones with nothing between them can be lost (merged into one segment).
    merged = [[p for j, p in enumerate(x) if j == 0 or x[j - 1] != p]
              for x in synthetic["labels"]]
    for path in hyps.values():
        lines = [line.split() for line in path.read_text("utf-8").splitlines()]
        assert phone_error_rate(lines, merged) < 0.05


WORDS = {"ab": "a b", "a": "a", "cde": "c d e", "db": "d b", "e": "e"}  # "a" prefixes "ab"


def test_decoding_words_with_a_lexicon(synthetic, tmp_path: Path) -> None:
    """The reference's word decode (decode_word_step): the phone model, a lexicon whose
    pronunciations need Kaldi's disambiguation (a prefix) and a word LM give back the words;
    choosing the LM weight compares their pronunciations with phone labels."""
    out = synthetic["dir"]
    if not (out / "model.pkl").exists():
        pytest.skip("needs the model of the training test")
    rng = np.random.default_rng(5)

    def sentence() -> list[str]:
        while True:  # no phone repeated across a word boundary: the frames would merge
            words = list(rng.choice(sorted(WORDS), size=int(rng.integers(2, 5))))
            phones = [WORDS[w].split() for w in words]
            if all(a[-1] != b[0] for a, b in zip(phones, phones[1:])):
                return words

    sentences = [sentence() for _ in range(25)]
    means = synthetic["means"]
    utts = [np.concatenate([means[p] + rng.normal(0, 1, (int(rng.integers(3, 12)), 13))
                            for p in ["<SIL>", *" ".join(WORDS[w] for w in s).split(), "<SIL>"]])
            .astype(np.float32) for s in sentences]
    write_features(tmp_path / "feats", utts)
    estimate_arpa([" ".join(sentence()) for _ in range(300)], 2, tmp_path / "words.arpa")
    hyps = decode_hmm(out / "model.pkl", tmp_path / "feats", tmp_path / "words.arpa", [1.0, 5.0],
                      tmp_path / "dec", lexicon=WORDS)
    for path in hyps.values():
        lines = [line.split() for line in path.read_text("utf-8").splitlines()]
        assert phone_error_rate(lines, sentences) < 0.05, lines[:3]
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(" ".join(WORDS[w] for w in s) + "\n" for s in sentences), "utf-8")
    selection = select_lm_weight(hyps, labels, tmp_path / "words.arpa", tmp_path / "select.tsv",
                                 lexicon=WORDS)
    rows = [line.split("\t") for line in (tmp_path / "select.tsv").read_text().splitlines()[1:]]
    assert len(rows) == 2 and all(float(r[3]) < 0.05 for r in rows)  # pronunciations vs labels
    assert selection.lm_weight in (1.0, 5.0)
    with pytest.raises(W2vuError, match=r"words.arpa: the word LM has words \['cde'\]"):
        decode_hmm(out / "model.pkl", tmp_path / "feats", tmp_path / "words.arpa", [1.0],
                   tmp_path / "dec2", lexicon={w: p for w, p in WORDS.items() if w != "cde"})


def test_training_is_reproducible(synthetic, tmp_path: Path) -> None:
    """Same inputs and seed, same model file; Kaldi's own mixing up (perturbation seeded by the
    OS) made these differ from the first split on."""
    out = synthetic["dir"]
    config = HmmConfig(gaussians=40, delta_order=0, iters=6, max_iter_inc=4)
    files = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train_hmm(out / "feats", out / "labels.txt", out / "dict.phn.txt",
                  tmp_path / f"{name}.pkl", config, seed=seed)
        files.append((tmp_path / f"{name}.pkl").read_bytes())
    assert load_hmm(tmp_path / "a.pkl").am.num_gauss > 24  # it did mix up
    assert files[0] == files[1]
    assert load_hmm(tmp_path / "a.pkl").am.num_gauss == load_hmm(tmp_path / "c.pkl").am.num_gauss
    assert files[0] != files[2]


def _gmm_system(rng: np.random.Generator, pdfs: int, dim: int) -> khg.AmDiagGmm:
    am = khg.AmDiagGmm()
    for _ in range(pdfs):
        gmm = khg.DiagGmm(nmix=2, dim=dim)
        gmm.set_weights(np.array([0.7, 0.3], dtype=np.float32))
        gmm.set_invvars_and_means(rng.uniform(0.5, 2.0, (2, dim)).astype(np.float32),
                                  rng.normal(0, 1, (2, dim)).astype(np.float32))
        gmm.compute_gconsts()
        am.add_pdf(gmm)
    return am


def _parameters(am: khg.AmDiagGmm) -> list[tuple[np.ndarray, ...]]:
    return [tuple(np.array(getattr(am.get_pdf(p), name), copy=True)
                  for name in ("weights", "inv_vars", "means_invvars"))
            for p in range(am.num_pdfs)]


def test_mix_up_is_kaldis_split_with_a_seeded_step() -> None:
    rng = np.random.default_rng(0)
    occupancy = rng.uniform(10, 400, 6).astype(np.float32)
    before = _gmm_system(rng, 6, 5)
    kaldi, ours, again = (khg.AmDiagGmm() for _ in range(3))
    for am in (kaldi, ours, again):
        am.copy_from_am_diag_gmm(before)
    kaldi.split_by_count(state_occs=occupancy, target_components=40, perturb_factor=0.01,
                         power=0.25, min_count=20.0)
    mix_up(ours, occupancy, 40, 0.01, 0.25, 20.0, np.random.default_rng(5))
    mix_up(again, occupancy, 40, 0.01, 0.25, 20.0, np.random.default_rng(5))
    assert ours.num_gauss == kaldi.num_gauss > 2 * 6
    for (kw, kv, km), (ow, ov, om), same, (bw, bv, bm) in zip(
            _parameters(kaldi), _parameters(ours), _parameters(again), _parameters(before)):
        np.testing.assert_array_equal(ow, kw)  # Kaldi's targets, order and halved weights
        np.testing.assert_array_equal(ov, kv)
        assert all(np.array_equal(x, y) for x, y in zip((ow, ov, om), same))
        if len(ow) > len(bw):  # the steps are small and keep the mixture's mean
            assert 0 < np.abs(om - km).max() < 0.2
            np.testing.assert_allclose(ow @ (om / ov), bw @ (bm / bv), atol=1e-5)


def test_bad_labels_name_the_line(synthetic, tmp_path: Path) -> None:
    out = synthetic["dir"]
    bad = tmp_path / "labels.txt"
    lines = [" ".join(x) for x in synthetic["labels"]]
    lines[2] = "a zz b"
    bad.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(W2vuError, match=r"labels.txt:3: .*zz"):
        train_hmm(out / "feats", bad, out / "dict.phn.txt", tmp_path / "m.pkl")
    bad.write_text("a b\n", "utf-8")
    with pytest.raises(W2vuError, match="line-aligned"):
        train_hmm(out / "feats", bad, out / "dict.phn.txt", tmp_path / "m.pkl")


def test_model_file_refuses_foreign_pickles(tmp_path: Path) -> None:
    import os
    import pickle

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"format": "w2vu-hmm-mono-1", "x": os.getcwd}))
    with pytest.raises(W2vuError, match="not allowed"):
        load_hmm(path)


def test_add_deltas_matches_kaldi_filters() -> None:
    x = np.arange(10, dtype=np.float32)[:, None] ** 2  # x = t^2: Δ = 2t, ΔΔ = 2 inside
    y = add_deltas(x, order=2)
    assert y.shape == (10, 3)
    np.testing.assert_allclose(y[4:6, 1], 2 * np.arange(4, 6), rtol=1e-5)
    np.testing.assert_allclose(y[4:6, 2], 2.0, rtol=1e-5)


@pytest.fixture(scope="session")
def phone_corpus(tmp_path_factory: pytest.TempPathFactory):
    return build_phone_corpus(tmp_path_factory.mktemp("hmm-corpus"), CORPUS_MINUTES, seed=0)


def test_self_training_beats_its_labels(phone_corpus, tmp_path: Path) -> None:
    refs = phone_corpus.reference_lines()
    noisy = corrupt_lines(refs, 0.35, seed=1)
    label_per = phone_error_rate(noisy, refs)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(" ".join(x) + "\n" for x in noisy), "utf-8")
    estimate_arpa(unpaired_phone_sentences(phone_corpus), 4, tmp_path / "lm.arpa")
    train_hmm(phone_corpus.features, labels, phone_corpus.dictionary, tmp_path / "model.pkl",
              HmmConfig(gaussians=300, delta_order=0))
    weights = [5.0, 10.0]
    hyps = decode_hmm(tmp_path / "model.pkl", phone_corpus.features, tmp_path / "lm.arpa",
                      weights, tmp_path / "dec",
                      DecodeConfig(beam=10.0, max_active=1000, lattice_beam=1.0))
    selection = select_lm_weight(hyps, labels, tmp_path / "lm.arpa", tmp_path / "select.tsv")
    table = (tmp_path / "select.tsv").read_text("utf-8").splitlines()
    assert table[0].split("\t")[:5] == ["lm_weight", "lm_ppl", "ln_ppl", "error_rate", "score"]
    assert len(table) == 1 + len(weights)
    chosen = [line.split() for line in selection.transcripts.read_text("utf-8").splitlines()]
    hmm_per = phone_error_rate(chosen, refs)
    print(f"labels PER {label_per:.3f}, HMM PER {hmm_per:.3f} (LM weight "
          f"{selection.lm_weight:g}, {len(refs)} utterances)")
    assert hmm_per < label_per - 0.05, (label_per, hmm_per)
