"""The reference's unsupervised score: perplexity definition and the error floor."""

import math

import pytest

from w2vu.eval.metrics import phone_error_rate
from w2vu.eval.unsupervised import grid_edge, lm_perplexity, unsupervised_score
from w2vu.selftrain.corrupt import corrupt_lines


class UniformLM:
    """Every token (and end of sentence) costs log10(1/10)."""

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        return -(len(sentence.split()) + 1.0)


def test_perplexity_counts_one_end_of_sentence_per_line_and_strips_sil():
    assert lm_perplexity([["a", "<SIL>", "b"], ["c"]], UniformLM()) == pytest.approx(10.0)
    assert lm_perplexity([], UniformLM()) == math.inf


def test_score_is_log_perplexity_times_floored_error():
    labels = [["a", "b", "c", "d"]]
    exact = unsupervised_score([["a", "b", "c", "d"]], labels, UniformLM(), min_error=0.1)
    assert exact.error_rate == 0.0
    assert exact.score == pytest.approx(math.log(10.0) * 0.1)
    wrong = unsupervised_score([["a", "x", "c", "d"]], labels, UniformLM())
    assert wrong.score == pytest.approx(math.log(10.0) * 0.25)
    with pytest.raises(ValueError):
        unsupervised_score([["a"]], [], UniformLM())


def test_corruption_reaches_the_target_error_rate():
    refs = [[f"p{(i * 7 + j) % 30}" for j in range(40)] for i in range(200)]
    noisy = corrupt_lines(refs, 0.35, seed=3)
    assert noisy == corrupt_lines(refs, 0.35, seed=3)
    assert 0.28 < phone_error_rate(noisy, refs) < 0.37
    assert corrupt_lines(refs, 0.0) == refs


def test_grid_edge_names_a_choice_at_either_end_of_a_sweep():
    assert "45 is the largest of those tried (11, 15, 20, 30, 45)" in grid_edge(
        "LM weight", [45, 11, 15, 20, 30], 45)
    assert "7 is the smallest" in grid_edge("LM weight", [7, 11, 15], 7)
    assert grid_edge("LM weight", [7, 11, 15], 11) is None
    assert grid_edge("blank weight", [0, 2, 4], 0, low_edge=False) is None
    assert grid_edge("LM weight", [7, 15], 15) is None  # two values are not a sweep
