# Config validation, path helpers and the command that runs w2vu: everything rules share.
import hashlib
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

REPO = os.path.dirname(workflow.basedir) if os.path.basename(workflow.basedir) == "workflow" else workflow.basedir
sys.path.insert(0, REPO)  # validation uses w2vu's own checks, from this checkout


# Cheap bookkeeping steps run on the submitting node under a cluster executor.
localrules:
    manifest,
    labels,
    audio_summary,
    gan_select,
    score,


wildcard_constraints:
    lang=r"[A-Za-z0-9_-]+",
    split=r"[A-Za-z0-9_]+",
    shard=r"[0-9]{3}",


def split_names_of(lang_cfg):
    """The splits named by one language's config."""
    splits = lang_cfg["splits"]
    if splits["method"] == "hash":
        return list(splits["fractions"])
    if splits["method"] == "lists":
        return list(splits["lists"])
    return list(splits["names"])


# Languages whose audio and text a rule builds (results/{lang}/{builder}/), not the user.
CORPUS_BUILDERS = {"demo": "corpus", "digits": "digits"}


include: "validation.smk"


SHARDS = [f"{i:03d}" for i in range(config["audio"]["shards"])]

# Rules run `python -m w2vu`. The repository goes on PYTHONPATH, so that conda envs (which hold
# only third-party packages) find the package; without conda, the interpreter running Snakemake
# goes first on PATH, so that `.venv/bin/snakemake` works without activating the venv.
def shell_literal(text):
    """Quote for the shell and escape braces, which Snakemake formats in shell commands."""
    return shlex.quote(text).replace("{", "{{").replace("}", "}}")


_uses_conda = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
_python_dir = os.path.dirname(sys.executable)
# Descriptor 3 keeps the console Snakemake prints to, which a rule's `> {log} 2>&1` leaves
# alone: long jobs write a status line there every minute (w2vu/logs.py, `console_status`).
shell.prefix(
    "set -euo pipefail; exec 3>&2; export W2VU_CONSOLE_FD=3; "
    f'export PYTHONPATH={shell_literal(REPO)}"${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
    + ("" if _uses_conda else f'export PATH={shell_literal(_python_dir)}:"$PATH"; ')
)


def option(flag, value):
    """`flag value` shell-quoted for a rule's `params:`, or nothing when the value is unset (None)
    or False; True gives the bare flag. Each tool flag stays a named param of its rule."""
    if value is None or value is False:
        return ""
    if value is True:
        return flag
    return shlex.join([flag, str(value)])


def language(lang):
    return config["languages"][lang]


def split_names(lang):
    """The splits of a language, in config order."""
    return split_names_of(language(lang))


def audio_table(lang):
    """The audio table of a language: the built corpus's, the configured one, or None."""
    folder = built_corpus_folder(lang)
    if folder:
        return f"{folder}/audio.tsv"
    return language(lang)["audio"].get("table")


def built_corpus_folder(lang):
    """Where the demo or digits corpus of a language is built, or None for user audio."""
    for key, folder in CORPUS_BUILDERS.items():
        if key in language(lang):
            return f"results/{lang}/{folder}"
    return None


def has_references(lang):
    """True when reference transcripts exist, so that label files and scores are made."""
    lang_cfg = language(lang)
    if built_corpus_folder(lang) or "references" in lang_cfg:
        return True
    table = audio_table(lang)
    if not table:
        return False
    with open(table, encoding="utf-8") as f:
        return "transcript" in f.readline().rstrip("\n").split("\t")


def shard_files(pattern, lang, split):
    """`pattern` formatted for every shard of one split of one language."""
    return [pattern.format(lang=lang, split=split, shard=shard) for shard in SHARDS]


def language_shard_files(pattern, lang):
    """`pattern` formatted for every (split, shard) of one language."""
    return [f for split in split_names(lang) for f in shard_files(pattern, lang, split)]


def transcript(lang, stage, split):
    return f"results/{lang}/transcripts/{stage}/{split}.txt"


def all_targets():
    """Every final output of every configured language."""
    return [t for lang in config["languages"]
            for t in audio_targets(lang) + text_targets(lang) + feature_targets(lang)
            + gan_targets(lang) + gan_transcript_targets(lang) + report_targets(lang)
            + model_targets(lang)]


def producible(path):
    """True when a rule of the workflow makes `path`, so a figure may ask for it."""
    return any(rule.is_producer(path) for rule in workflow.rules)


# Each phase's helpers, one file a phase (functions only: the rules are in rules/<phase>.smk).
include: "common/audio.smk"
include: "common/text.smk"
include: "common/features.smk"
include: "common/gan.smk"
include: "common/selftrain.smk"
include: "common/report.smk"
include: "common/model.smk"
