# Report figures (rules/report.smk): each only where this config makes its inputs.


def generated_transcripts(wildcards):
    """The GAN's Viterbi transcripts of every split, where the workflow makes them."""
    lang = wildcards.lang
    paths = [f"results/{lang}/transcripts/gan_viterbi/{split}.txt" for split in split_names(lang)]
    return [path for path in paths if producible(path)]


def cluster_unit_files(wildcards):
    """The k-means ids of every split (`CLUS{K}/{split}.src`), the k-means training split first."""
    lang, k = wildcards.lang, config["features"]["clusters"]
    splits = [TRAIN] + [split for split in split_names(lang) if split != TRAIN]
    return [f"results/{lang}/features/layer/CLUS{k}/{split}.src" for split in splits]


def report_targets(lang):
    """The report's figures of a language: those whose inputs this config makes."""
    names = ["speech_ratio", "utterance_lengths", "phone_frequencies"]
    if "wav2vec_u" in config["features"]["gan_inputs"]:
        names.append("cluster_usage")
    names += [f"gan_w2vu{v}" for v in config["gan"]["variants"]]
    if has_references(lang) and producible(f"results/{lang}/scores.tsv"):
        names.append("error_rates")
    return [f"results/{lang}/report/{name}.svg" for name in names]
