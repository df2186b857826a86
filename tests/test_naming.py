"""One name per stage: a rule runs the command of its own name, and a config value reaches the
command under its own name (README, Development; config/README.md, "Names")."""

from __future__ import annotations

import re

from tests.conftest import REPO
from tests.test_cli import subparsers_of
from w2vu.cli import build_parser

RULES = REPO / "workflow" / "rules"
# Rules that run a command of another name, and why (README's map table lists them too).
RULE_EXCEPTIONS = {
    # the next round's labels: the best kept round's train transcripts, as `ctc_best` does for
    # the final transcripts of every split
    "ctc_labels": "ctc-best",
}


def rule_blocks() -> dict[str, str]:
    """Each rule's name and text, from every rule file."""
    blocks: dict[str, str] = {}
    for smk in sorted(RULES.glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", smk.read_text(encoding="utf-8"), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2]):
            assert name not in blocks, f"rule {name} is defined twice"
            blocks[name] = body
    return blocks


def rule_command(body: str) -> str | None:
    """`COMMAND` or `report FIGURE` of a rule's `python -m w2vu` shell line."""
    found = re.findall(r"python -m w2vu\s+([a-z][a-z0-9-]*)(?:\s+([a-z][a-z-]*)\b(?!-))?", body)
    assert len(found) <= 1, found
    if not found:
        return None
    command, figure = found[0]
    return f"report {figure}" if command == "report" else command


def test_each_rule_runs_the_command_of_its_name():
    """rule `x_y` runs `w2vu x-y`, rule `report_x_y` runs `w2vu report x-y`; the exceptions are
    listed above with their reason."""
    commands = subparsers_of(build_parser())
    blocks = rule_blocks()
    assert len(blocks) >= 40
    for name, body in blocks.items():
        command = rule_command(body)
        if command is None:
            assert name == "all", f"rule {name} runs no w2vu command"
            continue
        expected = RULE_EXCEPTIONS.get(name) or (
            f"report {name.removeprefix('report_').replace('_', '-')}"
            if name.startswith("report_") else name.replace("_", "-"))
        assert command == expected, f"rule {name} runs `w2vu {command}`, expected `w2vu {expected}`"
        assert command.split()[0] in commands
    assert set(RULE_EXCEPTIONS) <= set(blocks), "an exception names a rule that no longer exists"


# A key in a shared config section may carry its stage as a prefix that the command's name
# already says (`selftrain.hmm_iters` -> `hmm-train --iters`); these prefixes also name a setting
# of other rules.
SHARED_PREFIXES = {
    "kmeans": "features.kmeans_backend: the backend of every clustering and PCA step",
}
# Config keys that reach a flag of another name, and why.
KEY_EXCEPTIONS = {
    ("espeak", "language"): "languages.<lang>.espeak is the espeak-ng code the steps take as "
                            "--language",
}


def params_entries(body: str) -> dict[str, str]:
    """A rule's `params:` entries: name -> expression text."""
    section = re.search(r"^    params:\n((?:        .*\n|\n)+?)(?=^    \w)", body, re.M)
    if not section:
        return {}
    parts = re.split(r"^        (\w+)=", section.group(1), flags=re.M)
    return {name: expr.strip().rstrip(",") for name, expr in zip(parts[1::2], parts[2::2])}


def config_key(expr: str) -> str | None:
    """The config key a param passes on unchanged (a value, or a flag set from it), else None."""
    keys = r'config((?:\["\w+"\])+)'
    direct = re.fullmatch(r'(?:option\("--[\w-]+", )?' + keys + r"\)?", expr)
    flag = re.fullmatch(r'"--[\w-]+" if ' + keys + r' else "(?:--[\w-]+)?"', expr)
    if direct or flag:
        return ".".join(re.findall(r'\["(\w+)"\]', (direct or flag).group(1)))
    lookup = re.fullmatch(r'lookup\(dpath="languages/\{lang\}/([\w/]+)", within=config\)', expr)
    if lookup:
        return "languages.*." + lookup.group(1).replace("/", ".")
    return None


def flag_of(name: str, expr: str, body: str) -> str | None:
    """The flag a param is passed with: in its own value (`option("--x", ...)`) or in the shell."""
    inside = re.findall(r'"--(?:no-)?([a-z0-9-]+)"', expr)
    helper = re.findall(r'\w+_option\((?:w, )?"(\w+)"\)', expr)  # backbone_option(w, "layer")
    shell = re.findall(r"--([a-z0-9-]+)\s+\{params\." + name + r"(?::q)?\}", body)
    flags = set(inside) | {h.replace("_", "-") for h in helper} | set(shell)
    assert len(flags) <= 1, (name, flags)
    return flags.pop() if flags else None


def param_key_flags() -> list[tuple[str, str, str, str]]:
    """(rule, command, flag, config key) of every param that passes a config key on unchanged."""
    found = []
    for rule, body in rule_blocks().items():
        command = rule_command(body)
        for name, expr in params_entries(body).items():
            key, flag = config_key(expr), flag_of(name, expr, body)
            if flag is not None:
                assert flag == name.replace("_", "-"), \
                    f"rule {rule}: param {name} is passed as --{flag}; name them alike"
            if key is not None and flag is not None:
                found.append((rule, command, flag, key))
    return found


def test_each_config_key_reaches_its_command_as_the_flag_of_its_name():
    """param name = flag; config key = flag, or `<stage>_<flag>` where the rule's name says the
    stage (`hmm_iters` -> hmm_train's `--iters`), or a listed shared prefix or exception."""
    mapped = param_key_flags()
    assert len(mapped) >= 50, mapped
    for rule, _, flag, key in mapped:
        leaf, name = key.rsplit(".", 1)[-1], flag.replace("-", "_")
        prefix = leaf.removesuffix(name).rstrip("_") if leaf.endswith("_" + name) else None
        ok = (leaf == name or (leaf, name) in KEY_EXCEPTIONS
              or prefix is not None and (prefix in SHARED_PREFIXES or rule.startswith(prefix)
                                         or any(w.startswith(prefix) for w in rule.split("_"))))
        assert ok, f"rule {rule}: config key {key} reaches --{flag}; give them one name"
