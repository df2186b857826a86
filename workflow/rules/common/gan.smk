# Path and argument helpers of the GAN rules (rules/gan.smk), the scores table included.


def gan_runs():
    """Run ids of the sweep: every combination of penalties and seeds ('ref' = the variant's
    reference value), so that each is one job."""
    cfg = config["gan"]
    runs = {}
    for cp in cfg["code_penalty"] or [None]:
        for gp in cfg["gradient_penalty"] or [None]:
            for sm in cfg["smoothness"] or [None]:
                for seed in cfg["seeds"]:
                    name = "_".join(f"{k}{'ref' if v is None else v}"
                                    for k, v in (("cp", cp), ("gp", gp), ("sm", sm)))
                    runs[f"{name}_seed{seed}"] = {"code_penalty": cp, "gradient_penalty": gp,
                                                  "smoothness": sm, "seed": seed}
    return runs


GAN_RUNS = gan_runs()


wildcard_constraints:
    gan_variant=r"w2vu[12]",
    run="|".join(GAN_RUNS),


def gan_feature_prefix(lang, variant, split):
    """The GAN input features of a variant: pooled PCA segments (1.0) or raw layer (2.0)."""
    base = f"results/{lang}/features/layer"
    if variant == "w2vu1":
        return f"{base}/precompute_pca{pca_dim()}_cls{config['features']['clusters']}_mean_pooled/{split}"
    return f"{base}/{split}"


def gan_inputs(wildcards):
    lang, variant = wildcards.lang, wildcards.gan_variant
    valid = config["gan"]["valid_split"]
    inputs = {
        "train": gan_feature_prefix(lang, variant, TRAIN) + ".npy",
        "valid": gan_feature_prefix(lang, variant, valid) + ".npy",
        "text": f"results/{lang}/text/phones/lm.phones.filtered.txt",
        "dictionary": f"results/{lang}/text/phones/dict.phn.txt",
        "lm": phone_lm(lang, config["text"]["selection_phone_lm_order"]),
    }
    if variant == "w2vu2":
        inputs["km"] = f"results/{lang}/features/layer/{TRAIN}.km"
    if has_references(lang):
        inputs["valid_phn"] = f"results/{lang}/manifest/{valid}.phn"
    return inputs


def gan_run_option(wildcards, key):
    """A sweep value of one run as its `gan-train` flag; none where the variant's reference
    value applies."""
    return option(f"--{key.replace('_', '-')}", GAN_RUNS[wildcards.run][key])


def gan_targets(lang):
    """Every run of the sweep, for every configured variant."""
    return [f"results/{lang}/gan/w2vu{v}/{run}/best.pt"
            for v in config["gan"]["variants"] for run in GAN_RUNS]


def gan_run_dirs(lang):
    """Every run folder of the sweep, all configured variants: what selection ranks."""
    return [f"results/{lang}/gan/w2vu{v}/{run}"
            for v in config["gan"]["variants"] for run in GAN_RUNS]


def gan_split_features(lang, split):
    """The split's GAN input of every configured variant, keyed by variant number."""
    return {v: gan_feature_prefix(lang, f"w2vu{v}", split) for v in config["gan"]["variants"]}


# Stages scored against the phone references; baselines and probes bracket the GAN's PER.
BASELINE_STAGES = ("baseline_frequent_phone", "baseline_constant_sentence",
                   "baseline_random_generator")


def probe_stages():
    return [f"probe_w2vu{v}" for v in config["gan"]["variants"]]


def score_rows(lang):
    """(stage, split, metric, hypothesis, reference) of every scored output of a language."""
    rows = []
    for split in split_names(lang):
        phn = f"results/{lang}/manifest/{split}.phn"
        for stage in ("gan_viterbi", "gan_wfst_phones", *BASELINE_STAGES, *probe_stages(), "hmm"):
            rows.append((stage, split, "per", transcript(lang, stage, split), phn))
        for stage, path in ctc_stages(lang):
            rows.append((stage, split, "per", path(split), phn))
        for stage in (*word_stages(), "baseline_constant_words"):
            rows.append((stage, split, "wer", transcript(lang, stage, split),
                         f"results/{lang}/manifest/{split}.wrd"))
    return rows


def word_stages():
    """Stages whose transcripts are words: the GAN's WFST decode, and the HMM's when asked."""
    return ["gan_wfst"] + (["hmm_words"] if config["selftrain"]["hmm_words"] else [])


def score_inputs(wildcards):
    return sorted({path for row in score_rows(wildcards.lang) for path in row[3:]})


def score_args(wildcards):
    return shlex.join(arg for row in score_rows(wildcards.lang) for arg in ("--row", *row))


def gan_transcript_targets(lang):
    """GAN transcripts of every split, and the scores table when references exist."""
    targets = [transcript(lang, stage, split) for split in split_names(lang)
               for stage in ("gan_viterbi", *word_stages(), "hmm", "selftrained")]
    if has_references(lang):
        targets.append(f"results/{lang}/scores.tsv")
    return targets
