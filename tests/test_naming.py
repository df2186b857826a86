"""One name per stage: a rule runs the command of its own name, and a config value reaches the
command under its own name (README, Development; config/README.md, "Names")."""

from __future__ import annotations

import argparse
import re

from tests.conftest import REPO
from w2vu.cli import build_parser
from w2vu.cli.commands import resolved

RULES = REPO / "workflow" / "rules"
# Rules that run a command of another name, and why (README's map table lists them too).
RULE_EXCEPTIONS = {
    # the next round's labels: the best kept round's train transcripts, as `ctc_best` does for
    # the final transcripts of every split
    "ctc_labels": "ctc-best",
}


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


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
    """rule `x_y` runs `w2vu x-y`, rule `report_x_y` runs `w2vu report x-y` (a registered command
    and figure, so a renamed command cannot strand a rule); the exceptions are listed above with
    their reason."""
    commands = subparsers_of(build_parser())
    figures = subparsers_of(commands["report"])
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
        assert command.split()[0] in commands, f"rule {name}: `w2vu {command}` is not registered"
        if command.startswith("report "):
            assert command.split()[1] in figures, f"rule {name}: `w2vu {command}` is unknown"
    assert set(RULE_EXCEPTIONS) <= set(blocks), "an exception names a rule that no longer exists"
    assert "python -m w2vu." not in "".join(blocks.values()), \
        "rules run the one `w2vu` entry point, not a module's own"


# A key in a shared config section may carry its stage as a prefix that the command's name
# already says (`selftrain.hmm_iters` -> `hmm-train --iters`); these prefixes also name a setting
# of other rules.
SHARED_PREFIXES = {
    "kmeans": "features.kmeans_backend: the backend of every clustering and PCA step",
}
# Config keys that reach a flag of another name, and why.
KEY_EXCEPTIONS = {
    ("method", "split_method"): "languages.<lang>.splits.method is the inventory's --split-method",
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


SCHEMAS = REPO / "workflow" / "schemas"
# Schema keys that reach no command flag unchanged, and where they go instead.
UNMAPPED = {
    "audio.shards": "the number of shard lists and jobs (inventory --shards counts them)",
    "text.lid_model": "an input and the --lid-model of normalize (lid_args, with lid_label)",
    "text.lid_threshold": "normalize --lid-threshold, passed with the LID model only",
    "text.selection_phone_lm_order": "the {order} of the phone LM file gan_train reads",
    "text.decoding_phone_lm_order": "the {order} of the phone LM file the phone graph uses",
    "text.lmplz": "word-lm --lmplz, passed only when set (lmplz_args)",
    "text.graphs": "which graphs rule all asks for",
    "features.backbone": "extract --backbone per feature variant (mfcc for the 2.0 targets)",
    "features.layer": "extract --layer, for a model backbone only (backbone_option)",
    "features.normalize": "extract --normalize, for a model backbone only (backbone_option)",
    "features.cluster_unnormalized": "which feature variant k-means reads",
    "features.mfcc_stack": "extract --mfcc-stack, for the MFCC backbone only (backbone_option)",
    "features.mfcc_cmvn": "extract --mfcc-cmvn, for the MFCC backbone only (backbone_option)",
    "features.gpu": "resources gpu=1, and kmeans --device cuda",
    "features.train_split": "the split k-means, PCA and the targets learn from (paths)",
    "features.pca_dim": "the {dim} of the PCA paths: pca --dim {wildcards.dim}",
    "features.gan_inputs": "which feature chains rule all asks for",
    "gan.variants": "the {gan_variant} of the run paths: gan-train --variant",
    "gan.code_penalty": "a sweep: each run's --code-penalty (gan_run_option)",
    "gan.gradient_penalty": "a sweep: each run's --gradient-penalty (gan_run_option)",
    "gan.smoothness": "a sweep: each run's --smoothness (gan_run_option)",
    "gan.seeds": "a sweep: each run's --seed",
    "gan.gpu": "resources gpu=1",
    "gan.valid_split": "the split whose features are gan-train --valid-features",
    "decode.graph": "the graph folder of wfst-tune and wfst-decode",
    "decode.tune_split": "the split wfst-tune reads",
    "selftrain.hmm_features": "which features the HMM and the small CTC model read",
    "selftrain.tune_split": "the split hmm-tune reads",
    "selftrain.hmm_words": "whether rule all asks for (and score reads) the HMM's words",
    "selftrain.labels": "which transcripts hmm-train, hmm-tune and ctc-judge get as --labels",
    "selftrain.ctc_from": "which transcripts round 1's ctc-train gets as --labels",
    "selftrain.ctc_iterations": "the number of CTC rounds (ctc_round paths)",
    "selftrain.ctc_max_epochs": "ctc-train --max-epochs of the small model (ctc_option)",
    "selftrain.ctc_max_updates": "ctc-train --max-updates of the small model (ctc_option)",
    "selftrain.ctc_lm_decode": "whether ctc-transcribe gets the phone graph",
    "selftrain.ctc_model": "which CTC model the rounds train (ctc_option)",
    "selftrain.finetune_lr": "ctc-train --lr when fine-tuning (ctc_option)",
    "selftrain.finetune_batch_seconds": "ctc-train --batch-seconds when fine-tuning",
    "selftrain.finetune_max_updates": "ctc-train --max-updates when fine-tuning",
    "selftrain.finetune_max_epochs": "ctc-train --max-epochs when fine-tuning",
    "selftrain.finetune_bf16": "ctc-train --bf16 when fine-tuning",
    "selftrain.gpu": "resources gpu=1",
    "model.system": "model --system, checked against the rounds first (model_system)",
}


# Keys whose command, run by hand, has a default of its own on purpose.
OWN_DEFAULTS = {
    "features.shards": "`w2vu extract` by hand reads the whole manifest (--shards 1)",
    "text.word_lm_prune": "`w2vu word-lm` by hand prunes nothing; the schema's thresholds go "
                          "with its word_lm_order 4, as the reference's",
    "threads": "a command by hand computes on one thread unless given --threads",
    "gan.threads": "`w2vu gan-train` by hand computes on one thread unless given --threads",
}


# Keys that reach a flag through a helper or a wildcard (UNMAPPED says how), and the flag: its
# default is checked like a param's.
VIA_HELPERS = {
    "text.lid_threshold": ("normalize", "lid-threshold"),
    "features.layer": ("extract", "layer"),
    "features.normalize": ("extract", "normalize"),
    "features.mfcc_stack": ("extract", "mfcc-stack"),
    "features.mfcc_cmvn": ("extract", "mfcc-cmvn"),
    "features.clusters": ("kmeans", "clusters"),
    "features.pca_dim": ("pca", "dim"),
    "selftrain.ctc_max_epochs": ("ctc-train", "max-epochs"),
    "selftrain.ctc_max_updates": ("ctc-train", "max-updates"),
    "model.system": ("model", "system"),
}


def schema_defaults(schema: dict, prefix: str = "") -> dict[str, object]:
    """Every leaf key of a schema with its default (a missing default is absent)."""
    found: dict[str, object] = {}
    for name, spec in schema.get("properties", {}).items():
        if spec.get("type") == "object" and "properties" in spec:
            found.update(schema_defaults(spec, f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = spec.get("default", "no default")
    return found


def cli_default(command: str, flag: str) -> object:
    parser = subparsers_of(build_parser())[command.split()[0]]
    if " " in command:
        parser = subparsers_of(parser)[command.split()[1]]
    (action,) = [a for a in parser._actions if f"--{flag}" in a.option_strings]
    return "no default" if action.required else resolved(action.default)


def test_each_default_of_a_config_key_is_the_commands_default():
    """The schema's default of every key a rule passes on unchanged is the command's own default
    (which is its library dataclass's where it has one); every other key is listed above."""
    import yaml

    config = schema_defaults(yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text()))
    language = schema_defaults(yaml.safe_load((SCHEMAS / "language.schema.yaml").read_text()),
                               "languages.*.")
    mapped = set()
    for _, command, flag, key in param_key_flags():
        mapped.add(key)
        expected = {**config, **language}.get(key, "no default")
        if expected == "no default" or key in OWN_DEFAULTS:
            continue
        got = cli_default(command, flag)
        got = list(got) if isinstance(got, tuple) else got
        assert got in (expected, "no default"), \
            f"{key} defaults to {expected!r} in the schema, `w2vu {command} --{flag}` to {got!r}"
    assert set(config) - mapped - {"languages"} == set(UNMAPPED), \
        "list each schema key that reaches no flag unchanged in UNMAPPED, and no other"
    assert set(VIA_HELPERS) <= set(config)
    for key, (command, flag) in VIA_HELPERS.items():
        assert cli_default(command, flag) == config[key], f"{key}: `w2vu {command} --{flag}`"


def test_fine_tuning_defaults_are_the_libraries():
    """The `selftrain.finetune_*` defaults are those of the reference's fine-tuning schedule
    (`finetune_config`), which `ctc-train --init` starts from."""
    import yaml

    from w2vu.audio import SAMPLE_RATE
    from w2vu.selftrain.ctc.finetune import finetune_config

    config = schema_defaults(yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text()))
    schedule = finetune_config()
    assert config["selftrain.finetune_lr"] == schedule.lr
    assert config["selftrain.finetune_batch_seconds"] * SAMPLE_RATE == schedule.max_frames
    assert config["selftrain.finetune_max_updates"] == schedule.max_updates
    assert config["selftrain.finetune_max_epochs"] == schedule.max_epochs
    assert config["selftrain.finetune_bf16"] == schedule.bf16


def test_library_defaults_resolve_and_each_flag_is_named_as_its_field():
    """Every option whose default lives in a library dataclass carries that field's name
    (`hmm-train --iters` -> `HmmConfig.iters`), and the default resolves."""
    from w2vu.cli.commands import LibraryDefault

    parsers = dict(subparsers_of(build_parser()))
    parsers.update({f"report {k}": v for k, v in subparsers_of(parsers.pop("report")).items()})
    checked = 0
    for command, parser in parsers.items():
        for action in parser._actions:
            if isinstance(action.default, LibraryDefault):
                owner = action.default.owner.partition(":")[2]
                if "." in owner:
                    assert owner.split(".")[1] == action.dest, \
                        f"`w2vu {command} --{action.dest}` takes its default from {owner}"
                assert action.default.value() is not action.default
                checked += 1
    assert checked >= 40, checked


def test_shipped_configs_restate_no_default():
    """config/*.yaml set only what differs from the schema's defaults (the defaults live there)."""
    import yaml

    defaults = schema_defaults(yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text()))
    configs = sorted((REPO / "config").glob("**/*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        settings = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "languages"}
        for section, values in settings.items():
            for key, value in flat(values, f"{section}."):
                assert defaults.get(key, "no default") != value, \
                    f"{path.relative_to(REPO)}: {key}: {value!r} is the default; remove it"


def flat(values: dict, prefix: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += flat(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


# Rules whose jobs may run on the cores Snakemake grants (`{threads}`, which `--cores` lowers and
# `--set-threads` raises), because their outputs do not depend on it, and why.
GRANTED_THREADS = {
    "convert": "--workers: a process per file, each file's output made alone",
    "vad": "--workers: a process per file, each file's output made alone",
    "trim": "--workers: a process per file, each file's output made alone",
}


def test_a_job_computes_with_the_configs_threads_not_the_cores_it_is_granted():
    """faiss k-means and torch give other bytes on another thread count (README, Determinism),
    so every `--threads` of a rule comes from a config key through `params`, never from
    Snakemake's `{threads}`; only the rules listed above use the grant."""
    blocks = rule_blocks()
    for rule, body in blocks.items():
        if "{threads}" in body:
            assert rule in GRANTED_THREADS, f"rule {rule} computes with the cores it is granted"
        if "--threads" in body:
            assert "--threads {params.threads}" in body, rule
            assert config_key(params_entries(body)["threads"]) in ("threads", "gan.threads"), rule
            assert re.search(r"^    threads: " + re.escape(params_entries(body)["threads"]),
                             body, re.M), f"rule {rule}: schedule it with the threads it uses"
    assert set(GRANTED_THREADS) <= set(blocks)
