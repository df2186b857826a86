# Path and argument helpers of the self-training rules (rules/selftrain.smk).


def gan_emissions(lang, split):
    """Frame log-probs of the selected generator on a split (prefix of .npy/.lengths)."""
    return f"results/{lang}/transcripts/gan_viterbi/{split}.emissions"


def selftrain_features(lang, split):
    """Self-training input (prefix): un-pooled PCA features (the reference's natural choice) or
    the layer features."""
    if config["selftrain"]["hmm_features"] == "pca":
        return f"results/{lang}/features/layer/precompute_pca{pca_dim()}/{split}"
    return f"results/{lang}/features/layer/{split}"


def selftrain_labels(lang, split):
    """The GAN pseudo-labels self-training learns from and is judged against
    (`selftrain.labels`): its Viterbi phones, or its WFST words through the lexicon."""
    if config["selftrain"]["labels"] == "gan_wfst":
        return transcript(lang, "gan_wfst_phones", split)
    return transcript(lang, "gan_viterbi", split)


CTC_ROUNDS = config["selftrain"]["ctc_iterations"]


def ctc_finetunes():
    """Whether the CTC rounds fine-tune the SSL backbone on the audio (reference §4.2) rather
    than train the small encoder on the features: `auto` does when a real model is configured."""
    mode = config["selftrain"]["ctc_model"]
    has_model = config["features"]["backbone"] != "mfcc"
    if mode == "finetune" and not has_model:
        raise WorkflowError("selftrain.ctc_model: finetune needs features.backbone to be a model "
                            "(a Hugging Face folder or a fairseq .pt); set it, or use `small`")
    return mode == "finetune" or (mode == "auto" and has_model)


CTC_FINETUNE = ctc_finetunes()


def ctc_inputs(lang, split):
    """What a CTC model reads: the split's manifest (fine-tuning) or its feature matrix."""
    if CTC_FINETUNE:
        return {"data": f"results/{lang}/manifest/{split}.tsv",
                "init": [config["features"]["backbone"]]}
    return {"data": selftrain_features(lang, split) + ".npy", "init": []}


def ctc_source_args(lang, split):
    """`ctc-train`/`ctc-transcribe` arguments naming that input."""
    if CTC_FINETUNE:
        return shlex.join(["--manifest", f"results/{lang}/manifest/{split}.tsv"])
    return shlex.join(["--features", selftrain_features(lang, split)])


def ctc_option(key):
    """One `ctc-train` flag of the configured CTC model: fine-tuning the backbone reads the
    `selftrain.finetune_*` keys, the small encoder the `selftrain.ctc_*` ones; a flag the model
    has no key for is left out."""
    cfg = config["selftrain"]
    value = cfg.get(f"finetune_{key}" if CTC_FINETUNE else f"ctc_{key}")
    if key == "init":
        value = config["features"]["backbone"] if CTC_FINETUNE else None
    if key == "bf16" and value is not None:
        return "--bf16" if value else "--no-bf16"
    return option(f"--{key.replace('_', '-')}", value)


wildcard_constraints:
    ctc_round=r"[1-9][0-9]*",
    judged_round=r"[0-9]+",


def ctc_round_dir(lang, ctc_round):
    return f"results/{lang}/selftrain/ctc/iter{ctc_round}"


def ctc_judge_inputs(wildcards):
    """What `ctc-judge` scores, on `selftrain.tune_split`: round 0 is the HMM's transcripts (no
    previous decision), round N the round's own, judged against the decision of round N-1."""
    lang, judged = wildcards.lang, int(wildcards.judged_round)
    split = config["selftrain"]["tune_split"]
    if judged == 0:
        return {"transcripts": transcript(lang, "hmm", split), "previous": []}
    return {"transcripts": f"{ctc_round_dir(lang, judged)}/transcripts/{split}.txt",
            "previous": [f"{ctc_round_dir(lang, judged - 1)}/round.json"]}


def ctc_labels(lang, ctc_round):
    """What a CTC round learns from: the HMM's train transcripts (or, with `selftrain.ctc_from:
    labels`, the GAN pseudo-labels), then the best kept round's."""
    if ctc_round == 1 and config["selftrain"]["ctc_from"] == "labels":
        return selftrain_labels(lang, TRAIN)
    if ctc_round == 1:
        return transcript(lang, "hmm", TRAIN)
    return f"{ctc_round_dir(lang, ctc_round)}/labels.txt"


def ctc_stages(lang):
    """(stage, split -> transcript) of every CTC round and of the final self-trained output."""
    stages = [(f"ctc_iter{r}", lambda split, r=r: f"{ctc_round_dir(lang, r)}/transcripts/{split}.txt")
              for r in range(1, CTC_ROUNDS + 1)]
    return stages + [("selftrained", lambda split: transcript(lang, "selftrained", split))]
