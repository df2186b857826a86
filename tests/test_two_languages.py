"""Two languages in one config: one Snakemake run builds both trees, their jobs side by side."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
import yaml

from tests.workflow_helpers import CORPUS, snakemake, write_config, write_corpus
from w2vu.io.manifest import read_manifest

pytestmark = pytest.mark.slow
LANGS = ("tiny", "other")
RUN = "gan/w2vu1/cpref_gpref_smref_seed1"
EVENT = re.compile(r"^\[(?P<time>\w{3} \w{3} +\d+ [\d:]+ \d{4})\]\n"
                   r"(?:(?:local)?rule (?P<rule>\w+):\n(?P<body>(?: {4}.*\n)*)"
                   r"|Finished jobid: (?P<finished>\d+) )", re.M)


def job_events(stdout: str) -> list[tuple[str, str, str]]:
    """("start" | "end", jobid, language) in the order Snakemake printed them."""
    events, lang_of = [], {}
    for m in EVENT.finditer(stdout):
        if m["rule"]:
            jobid = re.search(r"^ +jobid: (\d+)$", m["body"], re.M)[1]
            lang = re.search(r"^ +wildcards: .*\blang=(\w+)", m["body"], re.M)
            lang_of[jobid] = lang[1] if lang else None
            events.append(("start", jobid, lang_of[jobid]))
        else:
            events.append(("end", m["finished"], lang_of[m["finished"]]))
    return events


def test_two_languages_run_in_one_invocation(tmp_path, synth):
    write_corpus(tmp_path, synth)
    shutil.copytree(tmp_path / CORPUS, tmp_path / "other corpus")
    language = {"audio": {"paths": [CORPUS]}, "text": ["text.txt"],
                "splits": {"fractions": {"train": 0.7, "valid": 0.3}}}
    write_config(tmp_path, language, {"shards": 1})
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["languages"]["other"] = {**language, "espeak": "en-gb",
                                    "audio": {"paths": ["other corpus"]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))

    done = snakemake(tmp_path, *(f"results/{lang}/{RUN}/best.pt" for lang in LANGS))

    for lang in LANGS:
        out = tmp_path / "results" / lang
        rows = sum(len(read_manifest(out / f"manifest/{s}.tsv").rows) for s in ("train", "valid"))
        assert rows == 6, lang
        for split in ("train", "valid"):
            for path in read_manifest(out / f"manifest/{split}.tsv").paths():
                assert f"results/{lang}/audio/" in str(path), (lang, path)
        assert (out / "features/layer/train.npy").stat().st_size > 0
        assert (out / "text/phones/dict.phn.txt").read_text().strip()
        assert torch.load(out / RUN / "best.pt", weights_only=True)["model"]
        assert len((out / RUN / "metrics.tsv").read_text().splitlines()) > 1
        assert (tmp_path / "logs" / lang).is_dir() and (tmp_path / "benchmarks" / lang).is_dir()
    phones = {lang: (tmp_path / f"results/{lang}/text/phones/dict.phn.txt").read_text()
              for lang in LANGS}
    assert phones["tiny"] != phones["other"], "en-us and en-gb phonemise alike"

    events = job_events(done.stdout + done.stderr)
    order = {lang: [i for i, (_, _, jl) in enumerate(events) if jl == lang] for lang in LANGS}
    assert all(order.values()), events
    starts = {lang: [i for i in order[lang] if events[i][0] == "start"] for lang in LANGS}
    ends = {lang: [i for i in order[lang] if events[i][0] == "end"] for lang in LANGS}
    # Interleaved: neither language waits for the other to finish.
    assert min(starts["other"]) < max(ends["tiny"]) and min(starts["tiny"]) < max(ends["other"])
    # In parallel: at some moment a job of each language was running at once.
    running, both = set(), False
    for kind, jobid, lang in events:
        (running.add if kind == "start" else running.discard)((jobid, lang))
        both = both or {lang for _, lang in running} >= set(LANGS)
    assert both, events
