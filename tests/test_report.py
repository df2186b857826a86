"""Report figures: the figure functions on tiny files, and `snakemake --report` on a tiny run,
rendered in headless Chromium to check the figures are embedded and shown."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from w2vu.cli import main
from w2vu.errors import W2vuError
from w2vu.io.manifest import write_manifest, write_vads
from w2vu.report import figures

SVG = "{http://www.w3.org/2000/svg}"
REPORT_RULES = ("report_speech_ratio", "report_utterance_lengths", "report_cluster_usage",
                "report_phone_frequencies", "report_gan_training", "report_error_rates")


def svg_text(path: Path) -> str:
    """All text of an SVG (figures keep text as text), after checking it parses."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return " ".join(t for el in root.iter(f"{SVG}text") for t in el.itertext())


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- figure functions


def test_speech_ratio_from_summary_and_vads(tmp_path):
    summary = write_lines(tmp_path / "summary.tsv", [
        "split\tlisted\tkept\trejected\tseconds_in\tseconds_kept",
        "train\t3\t3\t0\t30.0\t15.0", "valid\t1\t1\t0\t10.0\t9.0"])
    manifests, vads = [], []
    for split, rows, segs in (("train", [("a.flac", 16000), ("b.flac", 32000)],
                               [[(0, 8000)], [(0, 8000), (16000, 32000)]]),
                              ("valid", [("c.flac", 16000)], [[]])):
        manifest = tmp_path / f"converted/{split}/000.tsv"
        manifest.parent.mkdir(parents=True)
        write_manifest(manifest, tmp_path, rows)
        write_vads(tmp_path / f"vad/{split}/000.vads", segs)
        manifests.append(manifest)
        vads.append(tmp_path / f"vad/{split}/000.vads")
    fractions = figures.speech_fractions(vads, manifests)
    np.testing.assert_allclose(fractions["train"], [0.5, 0.75])
    np.testing.assert_allclose(fractions["valid"], [0.0])
    out = figures.speech_ratio(summary, tmp_path / "fig.svg", vads, manifests)
    text = svg_text(out)
    assert "50%" in text and "90%" in text and "speech fraction per utterance" in text
    first = out.read_bytes()
    figures.speech_ratio(summary, out, vads, manifests)
    assert out.read_bytes() == first, "figures are byte-reproducible"
    with pytest.raises(W2vuError, match="rerun the VAD step"):
        figures.speech_fractions(vads[:1], manifests[1:])


def test_utterance_lengths_and_cluster_usage(tmp_path):
    manifests = {}
    for split, n in (("train", 5), ("test", 2)):
        manifests[split] = tmp_path / f"{split}.tsv"
        write_manifest(manifests[split], tmp_path, [(f"{i}.flac", 16000 * (i + 1))
                                                    for i in range(n)])
    text = svg_text(figures.utterance_lengths(manifests, tmp_path / "len.svg"))
    assert "train: 5 utt." in text and "test: 2 utt." in text

    train = write_lines(tmp_path / "train.src", ["0 0 1", "1 2 2 2"])
    test = write_lines(tmp_path / "test.src", ["3"])
    assert figures.cluster_counts(train, 4).tolist() == [2, 2, 3, 0]
    text = svg_text(figures.cluster_usage({"train": train, "test": test}, 4,
                                          tmp_path / "clus.svg"))
    assert "train: 3/4 clusters used, 7 frames" in text and "test: 1/4" in text
    png = figures.cluster_usage({"train": train}, 4, tmp_path / "clus.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(W2vuError, match="outside 0..1"):
        figures.cluster_counts(train, 2)


def test_phone_frequencies_real_vs_generated(tmp_path):
    text = write_lines(tmp_path / "lm.phones.filtered.txt", ["<SIL> a b a <SIL>", "a c"])
    generated = write_lines(tmp_path / "gan_viterbi/test.txt", ["a a a", "a d"])
    assert figures.phone_counts(text) == {"a": 3, "b": 1, "c": 1}
    assert figures.total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    out = figures.phone_frequencies(text, tmp_path / "ph.svg", {"gan_viterbi/test": generated})
    labels = svg_text(out)
    # real a .6 b .2 c .2, generated a .8 d .2: TV = (.2 + .2 + .2 + .2) / 2 = .4
    assert "gan_viterbi/test (TV distance 0.40)" in labels and "<SIL>" not in labels
    assert " d " in f" {labels} ", "phones only the generator outputs are drawn too"
    only_text = svg_text(figures.phone_frequencies(text, tmp_path / "ph2.svg"))
    assert "vs generated" not in only_text


def test_gan_training_panels_follow_the_columns(tmp_path):
    header = "\t".join(("update", "d_loss", "g_loss", "grad_pen", "code_ppl", "vocab_usage",
                        "lm_ppl", "out_len", "len_ratio", "weighted_lm_ppl", "per"))
    runs = {}
    for seed, scale in ((1, 1.0), (2, 2.0)):
        runs[f"cp4_gp1.5_sm0.5_seed{seed}"] = write_lines(
            tmp_path / f"run{seed}/metrics.tsv",
            [header] + [f"{u}\t{scale}\t{scale / u}\t0.1\t10\t0.5\t{30 / u}\t5\t1\t"
                        f"{'inf' if u == 1 else 40 / u}\tnan" for u in (1, 2, 3)])
    text = svg_text(figures.gan_training(runs, tmp_path / "gan.svg", "GAN training, x, w2vu1",
                                         keep="best"))
    assert "discriminator loss" in text and "weighted LM perplexity" in text
    assert "validation PER" not in text, "a column without values gets no panel"
    assert "cp4_gp1.5_sm0.5_seed2" in text and "GAN training, x, w2vu1" in text
    assert "star: best update by the selection metric" in text
    last = svg_text(figures.gan_training(runs, tmp_path / "last.svg", "GAN", keep="last"))
    assert "star: the last update" in last


def test_error_rates_and_cli(tmp_path):
    scores = write_lines(tmp_path / "scores.tsv", [
        "stage\tsplit\tmetric\terrors\treference_tokens\trate\tnote",
        "gan_viterbi\ttest\tper\t30\t100\t0.3", "gan_viterbi\tvalid\tper\t25\t100\t0.25",
        "baseline_frequent_phone\ttest\tper\t90\t100\t0.9", "gan_wfst\ttest\twer\t5\t10\t0.5",
        "baseline_constant_sentence\ttest\tper\t70\t100\t0.7",
        "probe_w2vu1\ttest\tper\t\t\tfailed\tprobe-train: no utterance has both phones"])
    assert main(["report", "error-rates", "--scores", str(scores),
                 "--out", str(tmp_path / "e.svg")]) == 0
    text = svg_text(tmp_path / "e.svg")
    assert "PER per stage" in text and "WER per stage" in text and "90.0" in text
    assert "probe_w2vu1" not in text  # a failed stage has no bar
    assert text.count("audio-blind (test)") == 1  # the PER panel's line; no WER baseline given
    assert main(["report", "error-rates", "--scores", str(tmp_path / "missing.tsv"),
                 "--out", str(tmp_path / "x.svg")]) == 2
    assert not (tmp_path / "x.svg").exists()
    src = write_lines(tmp_path / "CLUS4/train.src", ["0 1"])
    assert main(["report", "cluster-usage", "--src", str(src), "--clusters", "4",
                 "--out", str(tmp_path / "c.svg")]) == 0
    assert "train: 2/4 clusters used" in svg_text(tmp_path / "c.svg")


# --------------------------------------------------------------------------- snakemake --report


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def report_results(html: str) -> tuple[dict, dict]:
    """The `results` and `categories` objects the report's app renders from."""
    def var(name: str) -> dict:
        match = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', html, re.S)
        assert match, f"no {name} in the report"
        return json.loads(match.group(1))
    return var("results"), var("categories")


def decoded(data_uri: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a `data:` URI; Snakemake writes `data:{mime};charset=...;base64,`."""
    head, _, data = data_uri.partition(",")
    params = head.removeprefix("data:").split(";")
    assert params[-1] == "base64", head
    return params[0], base64.b64decode(data)


# Runs after the report's app has rendered: opens a category the way its menu button does, then
# clicks the eye button of one result (the report's own handler puts the figure into an <img>).
SHOW_FIGURE_JS = """
<script>
setTimeout(function () {
  app.showCategory(%(category)s);
  setTimeout(function () {
    var row = Array.from(document.querySelectorAll("tr")).find(
      function (tr) { return tr.textContent.indexOf(%(label)s) >= 0; });
    document.title = row ? "row found" : "row missing";
    var link = row && row.querySelector("a");
    if (link) { link.click(); }
  }, 500);
}, 500);
</script>
"""


def chromium(browser: str, page: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless run; tried a second time, with a fresh profile, if it hangs: on a loaded
    2-core machine headless chromium has hung once in a full suite (killed at the timeout) where
    the same page renders in seconds alone, and that is chromium's flake, not the report's."""
    for attempt in (1, 2):
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--hide-scrollbars", "--virtual-time-budget=10000", "--window-size=1400,1000",
               f"--user-data-dir={page.parent / f'chromium-profile-{attempt}'}", *args,
               page.as_uri()]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def shown_figure(browser: str, report: Path, category: str, label: str) -> tuple[str, Path]:
    """The rendered DOM and a screenshot of the report after clicking one result's eye button."""
    html = report.read_text(encoding="utf-8")
    script = SHOW_FIGURE_JS % {"category": json.dumps(category), "label": json.dumps(label)}
    page = report.with_name(f"view-{re.sub(r'[^a-z0-9]+', '_', label.lower())}.html")
    head, body_end, tail = html.rpartition("</body>")  # the last: the libraries hold others
    assert body_end, "no </body> in the report"
    page.write_text(head + script + body_end + tail, encoding="utf-8")
    dom = chromium(browser, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = page.with_suffix(".png")
    done = chromium(browser, page, f"--screenshot={shot}")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    return dom.stdout, shot


def figure_pixels(png: Path) -> int:
    """Pixels of matplotlib's first colour (C0, #1f77b4) in a screenshot: the report's own UI
    (slate and white) has none, so they show a figure is drawn on the page."""
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int((np.abs(rgb - np.array([31, 119, 180])).sum(axis=2) < 12).sum())


@pytest.mark.slow
def test_report_renders_the_figures(tmp_path, synth):
    from tests.workflow_helpers import CORPUS, planned_jobs, snakemake, write_config, write_corpus

    browser = find_chromium()
    if browser is None:
        pytest.skip("no chromium found (Debian: apt-get install chromium)")
    workdir = write_corpus(tmp_path, synth)
    write_config(workdir, {"audio": {"paths": [CORPUS]}, "text": ["text.txt"],
                           "splits": {"fractions": {"train": 0.7, "valid": 0.3}}})
    # No references here: no error-rate figure (its function is tested above).
    wanted = {"speech_ratio": ("Audio", "speech kept by VAD"),
              "utterance_lengths": ("Audio", "utterance lengths"),
              "cluster_usage": ("Features", "k-means cluster usage"),
              "phone_frequencies": ("Phones", "phone frequencies"),
              "gan_w2vu1": ("GAN training", "w2vu1")}
    targets = [f"results/tiny/report/{name}.svg" for name in wanted]
    planned = planned_jobs(workdir)  # the default target: every language's report_targets()
    assert {rule: planned.get(rule) for rule in REPORT_RULES} == {
        **dict.fromkeys(REPORT_RULES, 1), "report_error_rates": None}
    snakemake(workdir, *targets)
    snakemake(workdir, *targets, "--report", "report.html")
    report = workdir / "report.html"
    results, categories = report_results(report.read_text(encoding="utf-8"))

    # Every figure is embedded byte for byte, under its category, with its caption.
    for name, (category, label) in wanted.items():
        path = f"results/tiny/report/{name}.svg"
        assert path in results, sorted(results)
        entry = results[path]
        mime, data = decoded(entry["data_uri"])
        assert mime == "image/svg+xml" and entry["mime_type"] == "image/svg+xml"
        assert data == (workdir / path).read_bytes()
        assert label in entry["labels"].values()
        assert path in categories[category]["tiny"]
        assert "tiny" in entry["caption"] and len(entry["caption"]) > 100
    workflow_desc = report.read_text(encoding="utf-8")
    assert "wav2vec-U from raw speech and unpaired text" in workflow_desc

    # The page renders them: the category lists the figure and its eye button shows it.
    for name, (category, label) in wanted.items():
        dom, shot = shown_figure(browser, report, category, label)
        assert "<title>row found</title>" in dom, f"{label} not listed under {category}"
        uri = results[f"results/tiny/report/{name}.svg"]["data_uri"]
        assert f'<img src="{uri}"' in dom, f"{name} not shown after clicking its button"
        assert figure_pixels(shot) > 100, f"{name}: no figure drawn in {shot}"
    dom, shot = shown_figure(browser, report, "Audio", "no such figure")
    assert "<title>row missing</title>" in dom
    assert not any(f'<img src="{entry["data_uri"]}"' in dom for entry in results.values())
    assert figure_pixels(shot) < 20, "the check above would pass without a figure"
