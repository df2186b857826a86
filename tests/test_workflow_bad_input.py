"""Bad configs stop before any job runs, with one line naming the key and the fix; a file name
that is not UTF-8 becomes a reject while the other files go on (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.workflow_helpers import snakemake, write_config

pytestmark = pytest.mark.slow


def error_line(done, key: str) -> str:
    """The one line of the failed run that names `key`."""
    assert done.returncode != 0
    lines = [line for line in (done.stdout + done.stderr).splitlines() if key in line]
    assert len(lines) == 1, done.stdout + done.stderr
    return lines[0]


@pytest.fixture()
def workdir(tmp_path):
    (tmp_path / "text.txt").write_text("hello world\n")
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", np.zeros(16000, np.float32), 16000)
    return tmp_path


@pytest.mark.parametrize("language,audio,key,fix", [
    ({"audio": {"paths": ["data/does_not_exist"]}}, None,
     "config: languages.tiny.audio.paths: data/does_not_exist not found", "fix the path"),
    ({"audio": {"paths": ["audio/*.mp3"]}}, None,
     "config: languages.tiny.audio.paths: audio/*.mp3 matches no file", "fix the pattern"),
    ({"audio": {"paths": ["audio"]}, "espeak": "xx-klingon"}, None,
     "config: languages.tiny.espeak: espeak-ng does not support language 'xx-klingon'", " sv "),
    ({"audio": {"paths": ["audio"]}}, {"min_seconds": 200, "max_seconds": 10},
     "config: audio.min_seconds: 200 is not below audio.max_seconds (10)", "raise max_seconds"),
    ({"audio": {"paths": ["audio"]}, "references": "refs.tsv"}, None,
     "config: languages.tiny.references: refs.tsv has no transcript column", "the first line"),
    ({"audio": {"table": "audio.tsv"}}, None,
     "config: languages.tiny.audio.table: audio.tsv has no path column", "the first line"),
    ({"audio": {"paths": ["audio"]}, "splits": {"method": "lists", "lists": {"train": "t.lst"}}},
     None, "config: languages.tiny.splits.lists.train: t.lst not found", "not found"),
])
def test_bad_config_stops_before_any_job_with_one_line(workdir, language, audio, key, fix):
    (workdir / "refs.tsv").write_text("key\twords\na\thello world\n")
    (workdir / "audio.tsv").write_text("file\naudio/a.wav\n")
    write_config(workdir, {"text": ["text.txt"], **language}, {"shards": 1, **(audio or {})})
    done = snakemake(workdir, check=False)  # a real run, not -n: nothing may start
    assert fix in error_line(done, key)
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()


def test_config_without_languages_gives_the_schemas_message(workdir):
    (workdir / "config.yaml").write_text(yaml.safe_dump({"audio": {"shards": 1}}))
    done = snakemake(workdir, "-n", check=False)
    assert "config/README.md" in error_line(done, "config: 'languages' is a required property")


def test_a_file_name_that_is_not_utf8_is_a_reject_and_the_others_go_on(workdir):
    sf.write(bytes(workdir / "audio") + b"/caf\xe9.flac", np.zeros(16000, np.float32), 16000)
    write_config(workdir, {"audio": {"paths": ["audio"]}, "text": ["text.txt"]}, {"shards": 1})
    snakemake(workdir, "-n")
    snakemake(workdir, "results/tiny/audio/inventory/rejects.tsv")
    rejects = (workdir / "results/tiny/audio/inventory/rejects.tsv").read_text().splitlines()
    assert len(rejects) == 2 and rejects[1].endswith("\tinventory\tfile name is not valid UTF-8, "
                                                     "which the manifests and label files are "
                                                     "written in; rename the file")
    assert rejects[1].startswith(str(workdir / "audio" / "caf\\xe9.flac"))
    listed = (workdir / "results/tiny/audio/inventory/000.tsv").read_text().splitlines()
    assert len(listed) == 2 and "\ta\t" not in listed[0] and listed[1].startswith("a\t")


def test_a_missing_backbone_model_names_its_key(workdir):
    write_config(workdir, {"audio": {"paths": ["audio"]}, "text": ["text.txt"]}, {"shards": 1},
                 features={"backbone": "models/xls-r"})
    done = snakemake(workdir, "-n", check=False)
    assert "nothing is downloaded" in error_line(done, "config: features.backbone: models/xls-r "
                                                       "not found")
