# Path and argument helpers of the audio rules (rules/audio.smk).


def inventory_inputs(wildcards):
    """Files the inventory reads: the audio table, references and split lists."""
    lang_cfg = language(wildcards.lang)
    inputs = {}
    if audio_table(wildcards.lang):
        inputs["table"] = audio_table(wildcards.lang)
    if "references" in lang_cfg:
        inputs["references"] = lang_cfg["references"]
    for split, path in lang_cfg["splits"].get("lists", {}).items():
        inputs[f"list_{split}"] = path
    return inputs


def inventory_option(wildcards, key):
    """One `w2vu inventory` flag of a language's config: its audio source (`--table` or
    `--paths`), references, and split rule (`--split-method` and the method's own list); nothing
    where the language has no such value."""
    lang_cfg, table = language(wildcards.lang), audio_table(wildcards.lang)
    splits = lang_cfg["splits"]
    value = {
        "table": table,
        "paths": None if table else lang_cfg["audio"]["paths"],
        "references": lang_cfg.get("references"),
        "split_fractions": splits.get("fractions") if splits["method"] == "hash" else None,
        "split_lists": splits.get("lists") if splits["method"] == "lists" else None,
        "split_names": splits.get("names") if splits["method"] == "column" else None,
    }[key]
    if value is None:
        return ""
    if isinstance(value, dict):
        value = [f"{k}={v}" for k, v in value.items()]
    return shlex.join([f"--{key.replace('_', '-')}", *([value] if isinstance(value, str) else value)])


def source_fingerprint(wildcards):
    """A digest of the paths and sizes of every file under the configured audio paths.

    Folders cannot be rule inputs, so this param is what reruns the inventory when files are
    added, removed or replaced. Table sources are tracked as inputs instead.
    """
    lang_cfg = language(wildcards.lang)
    if audio_table(wildcards.lang):
        return ""
    digest = hashlib.sha1()
    for pattern in lang_cfg["audio"]["paths"]:
        if os.path.isdir(pattern):
            walked = ((os.path.join(r, f) for f in fs) for r, _, fs in os.walk(pattern))
            paths = sorted(p for group in walked for p in group)
        else:
            import glob

            paths = sorted(glob.glob(pattern, recursive=True))
        for path in paths:
            # fsencode: a name that is not UTF-8 (the inventory rejects it) is hashed as bytes.
            digest.update(os.fsencode(path) + f"\0{os.path.getsize(path)}\n".encode())
    return digest.hexdigest()


def audio_targets(lang):
    """What the audio stages of a language end in: manifests, labels, summary."""
    targets = [f"results/{lang}/audio/summary.tsv", f"results/{lang}/audio/rejects.tsv"]
    for split in split_names(lang):
        targets.append(f"results/{lang}/manifest/{split}.tsv")
        if has_references(lang):
            targets += [f"results/{lang}/manifest/{split}.{ext}"
                        for ext in ("wrd", "ltr", "given.phn", "phn")]
    return targets
