# Config validation: the schemas, then what a schema cannot express (files that must exist, table
# columns, an espeak code espeak-ng knows), so that a bad config stops before any job runs with one
# line naming the key and the fix.
import glob
import re

from snakemake.utils import validate

from w2vu.errors import W2vuError
from w2vu.text.encoding import check_utf8
from w2vu.text.phonemize import check_language


def config_error(key, message):
    """The one-line error of a bad config value: the key, what is wrong, the fix."""
    return WorkflowError(f"config: {key}: {message}" if key else f"config: {message}")


def validated(instance, schema, key):
    """Validate against a schema (filling defaults); Snakemake's error, which prints the whole
    schema, becomes one line: the key and what is wrong."""
    try:
        validate(instance, schema=schema)
    except WorkflowError as e:
        text = str(e)
        problem = re.search(r"^ValidationError: (.*)$", text, re.M)
        where = re.search(r"^On instance(.*):$", text, re.M)
        path = re.findall(r"\[(?:'([^']*)'|(\d+))\]", where.group(1)) if where else []
        full = ".".join([key, *(name or index for name, index in path)] if key else
                        [name or index for name, index in path])
        reason = problem.group(1) if problem else text
        raise config_error(full, f"{reason} (config/README.md explains every key)") from None


def check_table_header(key, path, required, one_of=()):
    """The header line of a TSV the inventory will read has the columns it needs."""
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().rstrip("\r\n").split("\t")
    except UnicodeDecodeError:
        raise config_error(key, f"{path} is not UTF-8 text; save it as UTF-8") from None
    missing = [c for c in required if c not in header]
    if one_of and not any(c in header for c in one_of):
        missing.append(" or ".join(one_of))
    if missing:
        raise config_error(key, f"{path} has no {', '.join(missing)} column (its header line: "
                           f"{', '.join(header) or 'empty'}); the first line must name the "
                           "tab-separated columns")


def check_audio_paths(key, paths):
    """Every folder or file exists and every glob matches at least one file."""
    for pattern in paths:
        if glob.has_magic(pattern):
            if not any(os.path.isfile(p) for p in glob.iglob(pattern, recursive=True)):
                raise config_error(key, f"{pattern} matches no file; fix the pattern")
        elif not os.path.exists(pattern):
            raise config_error(key, f"{pattern} not found (relative paths start at "
                               f"{os.getcwd()}); fix the path or run from the right --directory")


def check_espeak(key, code):
    """espeak-ng knows the language code (asked once, in the main process only)."""
    if not workflow.is_main_process:
        return
    try:
        check_language(code)
    except W2vuError as e:
        raise config_error(key, str(e)) from None


def validate_language(name, lang):
    """Validate one language (filling defaults) and check what the schema cannot express."""
    where = f"languages.{name}"
    validated(lang, "../schemas/language.schema.yaml", where)
    built = [k for k in CORPUS_BUILDERS if k in lang]
    if len(built) > 1:
        raise config_error(where, "give one of `demo` and `digits`, not both")
    if built:
        if "audio" in lang or "text" in lang:
            raise config_error(where, f"`{built[0]}` builds the audio and text; remove `audio` "
                               f"and `text`, or remove `{built[0]}`")
        if built[0] == "digits":
            fsdd_table = os.path.join(lang["digits"]["fsdd"], "transcripts.tsv")
            if not os.path.isfile(fsdd_table):
                raise config_error(f"{where}.digits.fsdd", f"{fsdd_table} not found (the Free "
                                   "Spoken Digit Dataset folder, e.g. ../shared/data/fsdd)")
            if lang["digits"]["min_digits"] > lang["digits"]["max_digits"]:
                raise config_error(f"{where}.digits", "min_digits is above max_digits")
    elif "audio" not in lang or "text" not in lang:
        raise config_error(where, "give `audio` (paths or table) and `text`, `demo: {}` for the "
                           "synthesised demo corpus, or `digits: {fsdd: folder}`")
    elif ("paths" in lang["audio"]) == ("table" in lang["audio"]):
        raise config_error(f"{where}.audio", "give exactly one of `paths` and `table`")
    elif "table" in lang["audio"]:
        if not os.path.isfile(lang["audio"]["table"]):
            raise config_error(f"{where}.audio.table", f"{lang['audio']['table']} not found")
        split_column = ("split",) if lang["splits"]["method"] == "column" else ()
        check_table_header(f"{where}.audio.table", lang["audio"]["table"], ("path", *split_column))
    if "lid_label" in lang and "lid_model" not in config.get("text", {}):
        raise config_error(f"{where}.lid_label", "set text.lid_model too, or remove lid_label")
    for key in ("text", "references", "lexicon"):
        for path in [lang[key]] if isinstance(lang.get(key), str) else lang.get(key, []):
            if not os.path.isfile(path):
                raise config_error(f"{where}.{key}", f"{path} not found")
    for path in lang.get("text", []):
        try:
            check_utf8(path)
        except W2vuError as e:
            raise config_error(f"{where}.text", str(e)) from None
    if "paths" in lang.get("audio", {}):
        check_audio_paths(f"{where}.audio.paths", lang["audio"]["paths"])
    if "references" in lang:
        check_table_header(f"{where}.references", lang["references"], ("transcript",),
                           one_of=("path", "key"))
    train_split = config["features"]["train_split"]
    if train_split not in split_names_of(lang):
        raise config_error(f"{where}.splits", f"no split named {train_split!r}, which k-means "
                           "and PCA learn from; add it or set features.train_split")
    method = lang["splits"]["method"]
    if method == "lists" and "lists" not in lang["splits"]:
        raise config_error(f"{where}.splits", "method `lists` needs `lists: {split: file}`")
    for split, path in lang["splits"].get("lists", {}).items():
        if not os.path.isfile(path):
            raise config_error(f"{where}.splits.lists.{split}", f"{path} not found")
    has_table = "table" in lang.get("audio", {}) or "digits" in lang
    if method == "column" and ("names" not in lang["splits"] or not has_table):
        raise config_error(f"{where}.splits", "method `column` needs `names: [...]` and an audio "
                           "`table` with a split column")
    check_espeak(f"{where}.espeak", lang["espeak"])


def validate_config():
    """The whole config: the schema (which fills defaults), each language, cross-key limits."""
    validated(config, "../schemas/config.schema.yaml", "")
    audio = config["audio"]
    if audio["min_seconds"] >= audio["max_seconds"]:
        raise config_error("audio.min_seconds", f"{audio['min_seconds']} is not below "
                           f"audio.max_seconds ({audio['max_seconds']}), so every file would be "
                           "rejected; lower min_seconds or raise max_seconds")
    models = {"features.backbone": config["features"]["backbone"],
              "text.lid_model": config["text"].get("lid_model")}
    for key, path in models.items():
        if path and path != "mfcc" and not os.path.exists(path):
            raise config_error(key, f"{path} not found; give a local file or folder (nothing is "
                               "downloaded)")
    for name, lang in config["languages"].items():
        validate_language(name, lang)


validate_config()
