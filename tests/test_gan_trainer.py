"""Tests for the GAN data pipeline and trainer (reference §2.1, §2.5, §2.6, §3.1)."""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from w2vu.errors import W2vuError
from w2vu.eval.metrics import edit_distance
from w2vu.gan import run_state as run_state_mod
from w2vu.gan.data import PAD_INDEX, eval_batches, load_phone_text, open_training_data
from w2vu.gan.trainer import (
    CHECKPOINT_BEST,
    METRIC_COLUMNS,
    TrainConfig,
    TrainPaths,
    build_model,
    train,
)
from w2vu.gan.validate import generate_ids, unsupervised_metrics
from w2vu.io.dictionary import UNK_INDEX, load_phone_dictionary
from w2vu.io.features import write_features, write_unit_lines
from w2vu.train.checkpoints import CHECKPOINT_LAST
from w2vu.train.metrics_table import METRICS

PHONES = [f"p{i}" for i in range(11)]  # + <SIL> = 12 phones
DIM = 20
LENGTHS = [0, 1, 2, 5, 9, 14, 20, 7, 3, 11, 2, 16, 8, 12, 6, 10, 4, 13, 18, 9, 5, 15, 7, 3]


@pytest.fixture(autouse=True)
def deterministic() -> Iterator[None]:
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(prev)


def _arpa() -> str:
    """A hand-written bigram: p0..p3 likely, everything else rare, `p0 p1` boosted."""
    uni = [("<unk>", -3.0, 0.0), ("<s>", -99.0, -0.3), ("</s>", -1.0, 0.0)]
    uni += [(p, -0.8 if i < 4 else -1.6, -0.2) for i, p in enumerate(PHONES)]
    uni += [("<SIL>", -1.2, -0.2)]
    bi = [("<s> p0", -0.3), ("p0 p1", -0.2), ("p1 </s>", -0.4)]
    lines = ["", "\\data\\", f"ngram 1={len(uni)}", f"ngram 2={len(bi)}", "", "\\1-grams:"]
    lines += [f"{lp}\t{w}\t{bo}" for w, lp, bo in uni]
    lines += ["", "\\2-grams:"] + [f"{lp}\t{w}" for w, lp in bi] + ["", "\\end\\", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TrainPaths:
    root = tmp_path_factory.mktemp("gan")
    rng = np.random.default_rng(0)
    utts = [rng.standard_normal((n, DIM)).astype(np.float32) for n in LENGTHS]
    write_features(root / "train", utts)
    (root / "dict.phn.txt").write_text("".join(f"{p} {100 - i}\n" for i, p in enumerate(PHONES))
                                       + "<SIL> 0\n")
    sentences = [" ".join(rng.choice(PHONES + ["<SIL>"], size=rng.integers(3, 12)))
                 for _ in range(50)]
    (root / "lm.phones.filtered.txt").write_text("\n".join(sentences) + "\n")
    (root / "lm.arpa").write_text(_arpa())
    refs = [" ".join(rng.choice(PHONES, size=max(n // 3, 1))) for n in LENGTHS]
    (root / "train.phn").write_text("\n".join(refs) + "\n")
    write_unit_lines(root / "train.km", [rng.integers(0, 8, size=n) for n in LENGTHS])
    return TrainPaths(features=root / "train", text=root / "lm.phones.filtered.txt",
                      dictionary=root / "dict.phn.txt", lm=root / "lm.arpa",
                      valid_phn=root / "train.phn", km=root / "train.km")


def _config(**kw: object) -> TrainConfig:
    base = dict(max_updates=24, batch_size=8, validate_every=6, checkpoint_every=6, seed=3,
                device="cpu", discriminator_dim=16, eval_batch_size=8, target_dim=8)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_dictionary_and_text(data: TrainPaths, tmp_path: Path) -> None:
    d = load_phone_dictionary(data.dictionary)
    assert d.symbols[:5] == ("<s>", "<pad>", "</s>", "<unk>", "p0")
    assert d.symbols[-1] == "<SIL>" and len(d) == 16 and d.num_symbols == 12
    (tmp_path / "t.txt").write_text("p0 zz <SIL>\n\np3\n")
    text = load_phone_text(tmp_path / "t.txt", d)
    assert len(text) == 2
    assert text[0].tolist() == [4, UNK_INDEX, d.sil_index]


def test_batches_skip_short_and_are_deterministic(data: TrainPaths) -> None:
    batches, _ = open_training_data(data.features, data.text, data.dictionary, 8, seed=5)
    long_enough = {i for i, n in enumerate(LENGTHS) if n >= 3}
    per_epoch = batches.batches_per_epoch
    for epoch in range(2):
        seen = [i for u in range(epoch * per_epoch, (epoch + 1) * per_epoch)
                for i in batches.indices_for(u).tolist()]
        assert sorted(seen) == sorted(long_enough)
    again, _ = open_training_data(data.features, data.text, data.dictionary, 8, seed=5)
    b1, b2 = batches.batch(7), again.batch(7)
    assert torch.equal(b1.features, b2.features) and torch.equal(b1.random_label, b2.random_label)
    assert b1.padding_mask.shape == b1.features.shape[:2]
    lengths = (~b1.padding_mask).sum(1)
    assert lengths.tolist() == [LENGTHS[i] for i in b1.indices.tolist()]
    assert (b1.random_label == PAD_INDEX).any() or b1.random_label.size(1) > 0


def test_generation_covers_every_index(data: TrainPaths) -> None:
    batches, d = open_training_data(data.features, data.text, data.dictionary, 8)
    order = [i for b in eval_batches(batches.features, 5) for i in b.indices.tolist()]
    assert order == list(range(len(LENGTHS)))
    model = build_model(_config(), len(d), DIM)
    hyps = generate_ids(model, batches.features, torch.device("cpu"), 5, d.sil_index)
    assert len(hyps) == len(LENGTHS) and hyps[0] == []


def test_metric_and_edit_distance() -> None:
    class FlatLM:
        def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
            return -1.0 * (len(sentence.split()) + 1)

    m = unsupervised_metrics([["a", "b"], ["a"]], FlatLM(), num_symbols=4, text_len=3.0)
    assert m["lm_ppl"] == pytest.approx(10.0)
    assert m["vocab_usage"] == 0.5 and m["weighted_lm_ppl"] == pytest.approx(40.0)
    assert math.isinf(unsupervised_metrics([[]], FlatLM(), 4, 3.0)["weighted_lm_ppl"])
    assert edit_distance("kitten", "sitting") == 3 and edit_distance([], ["a"]) == 1


def test_train_writes_metrics_and_best(data: TrainPaths, tmp_path: Path) -> None:
    best = train(_config(), data, tmp_path)
    rows = _rows(tmp_path / METRICS)
    assert [int(r["update"]) for r in rows] == [6, 12, 18, 24]
    assert list(rows[0]) == list(METRIC_COLUMNS)
    assert all(not math.isnan(float(r["per"])) for r in rows)
    scores = [float(r["weighted_lm_ppl"]) for r in rows]
    ckpt = torch.load(tmp_path / CHECKPOINT_BEST, weights_only=True)
    assert ckpt["update"] == int(rows[int(np.argmin(scores))]["update"])
    assert best["weighted_lm_ppl"] == pytest.approx(min(scores), rel=1e-6)
    assert "generator.proj.1.weight" in ckpt["model"]
    assert "discriminator.net.3.0.weight" in ckpt["model"]
    assert (tmp_path / CHECKPOINT_LAST).exists()


class Crash(Exception):
    """Stands in for kill -9 during a checkpoint write."""


def test_resume_is_bit_exact(data: TrainPaths, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    train(_config(), data, a)
    train(_config(max_updates=12), data, b)  # stopped by max_updates
    real_save = run_state_mod.save_atomically

    def crashing(obj: dict, path: Path) -> None:
        if path.name == CHECKPOINT_LAST and obj["update"] == 18:
            (path.parent / f".{path.name}.tmp-crash").write_bytes(b"PK\x03\x04 torn")
            raise Crash
        real_save(obj, path)

    monkeypatch.setattr(run_state_mod, "save_atomically", crashing)
    with pytest.raises(Crash):
        train(_config(), data, b)
    assert torch.load(b / CHECKPOINT_LAST, weights_only=True)["update"] == 12
    monkeypatch.setattr(run_state_mod, "save_atomically", real_save)
    train(_config(), data, b)
    assert not list(b.glob(".*.tmp-*"))
    ca = torch.load(a / CHECKPOINT_LAST, weights_only=True)
    cb = torch.load(b / CHECKPOINT_LAST, weights_only=True)
    assert ca["update"] == cb["update"] == 24
    assert ca["model"].keys() == cb["model"].keys()
    for key in ca["model"]:
        assert torch.equal(ca["model"][key], cb["model"][key]), key
    assert (a / METRICS).read_text() == (b / METRICS).read_text()
    best_a = torch.load(a / CHECKPOINT_BEST, weights_only=True)
    best_b = torch.load(b / CHECKPOINT_BEST, weights_only=True)
    assert best_a["update"] == best_b["update"]


def test_finished_run_restores_removed_outputs(data: TrainPaths, tmp_path: Path) -> None:
    """Snakemake deletes declared outputs before a rerun; the rolling checkpoint brings them back
    with the best validation's weights, not the last update's."""
    train(_config(), data, tmp_path)
    best = torch.load(tmp_path / CHECKPOINT_BEST, weights_only=True)
    metrics = (tmp_path / METRICS).read_text()
    (tmp_path / CHECKPOINT_BEST).unlink()
    (tmp_path / METRICS).unlink()
    train(_config(), data, tmp_path)
    again = torch.load(tmp_path / CHECKPOINT_BEST, weights_only=True)
    assert (tmp_path / METRICS).read_text() == metrics
    assert again["update"] == best["update"]
    for key in best["model"]:
        assert torch.equal(again["model"][key], best["model"][key]), key


def test_keep_last_holds_the_final_update(data: TrainPaths, tmp_path: Path) -> None:
    """keep="last": best.pt is the final model whatever the metric says, also when a finished
    run trained under keep="best" is asked again (the rolling checkpoint is reused)."""
    train(_config(), data, tmp_path)
    scores = [float(r["weighted_lm_ppl"]) for r in _rows(tmp_path / METRICS)]
    assert int(np.argmin(scores)) != len(scores) - 1  # else this test shows nothing
    row = train(_config(keep="last"), data, tmp_path)
    kept = torch.load(tmp_path / CHECKPOINT_BEST, weights_only=True)
    last = torch.load(tmp_path / CHECKPOINT_LAST, weights_only=True)
    assert kept["update"] == row["update"] == 24
    assert kept["metrics"]["weighted_lm_ppl"] == pytest.approx(scores[-1], rel=1e-6)
    for key in kept["model"]:
        assert torch.equal(kept["model"][key], last["model"][key]), key
    with pytest.raises(W2vuError, match="gan.keep"):
        _config(keep="first")


def test_resume_refuses_other_settings(data: TrainPaths, tmp_path: Path) -> None:
    train(_config(max_updates=2), data, tmp_path)
    with pytest.raises(Exception, match="other training settings"):
        train(_config(max_updates=4, seed=4), data, tmp_path)


def test_workflow_restarts_a_run_whose_settings_changed(data: TrainPaths, tmp_path: Path) -> None:
    """A rerun after a settings change (as Snakemake does) starts over instead of resuming."""
    train(_config(max_updates=2), data, tmp_path / "a")
    train(_config(max_updates=4, seed=4), data, tmp_path / "a", restart_on_change=True)
    train(_config(max_updates=4, seed=4), data, tmp_path / "b")
    for name in (CHECKPOINT_LAST, CHECKPOINT_BEST):
        a = torch.load(tmp_path / "a" / name, weights_only=True)["model"]
        b = torch.load(tmp_path / "b" / name, weights_only=True)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_a_checkpoint_of_other_inputs_is_not_resumed(data: TrainPaths, tmp_path: Path) -> None:
    """Snakemake reruns training into the same folder when an upstream stage changed its inputs
    (e.g. normalised features: same shapes, other values); the checkpoint left there learnt from
    the old inputs, so it is refused, or discarded by the workflow, like other settings."""
    root = tmp_path / "inputs"
    root.mkdir()
    for ext in (".npy", ".lengths"):
        (root / f"train{ext}").write_bytes(Path(f"{data.features}{ext}").read_bytes())
    moved = dataclasses.replace(data, features=root / "train")
    train(_config(max_updates=2), moved, tmp_path / "a")
    feats = np.load(root / "train.npy")
    np.save(root / "train.npy", feats * 2.0)  # same shape and lengths, other values
    with pytest.raises(Exception, match="other training settings or data"):
        train(_config(max_updates=4), moved, tmp_path / "a")
    train(_config(max_updates=4), moved, tmp_path / "a", restart_on_change=True)
    train(_config(max_updates=4), moved, tmp_path / "b")
    a = torch.load(tmp_path / "a" / CHECKPOINT_LAST, weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / CHECKPOINT_LAST, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_variant2_with_km_targets(data: TrainPaths, tmp_path: Path) -> None:
    train(_config(variant=2, max_updates=4, validate_every=2), data, tmp_path)
    ckpt = torch.load(tmp_path / CHECKPOINT_BEST, weights_only=True)
    assert ckpt["model"]["decoder.weight"].shape == (8, DIM)
    assert "generator.bn.running_mean" in ckpt["model"]
    assert ckpt["trajectory"]["lr_generator"] == 5e-5
    assert len(_rows(tmp_path / METRICS)) == 2


def test_deeper_discriminator_trains_and_generates(data: TrainPaths, tmp_path: Path) -> None:
    """`discriminator_depth`: a GELU after each inner layer; the run's best.pt carries the depth
    so generation rebuilds the same model; the reference depth adds nothing to the trajectory."""
    from w2vu.gan.generate import generate, load_checkpoint, model_from_checkpoint

    deep = _config(discriminator_depth=4, max_updates=6)
    assert "discriminator_depth" not in _config().trajectory()
    model = build_model(deep, len(PHONES) + 5, DIM)
    assert sum(isinstance(m, torch.nn.GELU) for m in model.discriminator.modules()) == 3
    train(deep, data, tmp_path)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_BEST)
    assert ckpt["trajectory"]["discriminator_depth"] == 4
    assert model_from_checkpoint(ckpt, tmp_path / CHECKPOINT_BEST).discriminator.cfg.depth == 4
    generate(tmp_path / CHECKPOINT_BEST, data.features, data.dictionary, tmp_path / "gen",
             "train", device="cpu")
    assert len((tmp_path / "gen" / "train.txt").read_text().splitlines()) == len(LENGTHS)
    with pytest.raises(W2vuError, match="discriminator_depth"):
        _config(discriminator_depth=0)
