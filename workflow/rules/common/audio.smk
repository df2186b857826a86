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


def inventory_source_args(wildcards):
    """The source arguments of `w2vu inventory`, shell-quoted."""
    lang_cfg = language(wildcards.lang)
    table = audio_table(wildcards.lang)
    args = ["--table", table] if table else ["--paths", *lang_cfg["audio"]["paths"]]
    if "references" in lang_cfg:
        args += ["--references", lang_cfg["references"]]
    return shlex.join(args)


def inventory_split_args(wildcards):
    """The split arguments of `w2vu inventory`, shell-quoted."""
    splits = language(wildcards.lang)["splits"]
    args = ["--split-method", splits["method"]]
    if splits["method"] == "hash":
        args += ["--split-fractions", *(f"{k}={v}" for k, v in splits["fractions"].items())]
    elif splits["method"] == "lists":
        args += ["--split-lists", *(f"{k}={v}" for k, v in splits["lists"].items())]
    else:
        args += ["--split-names", *splits["names"]]
    return shlex.join(args)


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
