# Path and argument helpers of the text rules (rules/text.smk).


def unpaired_text(wildcards):
    """The unpaired text files of a language (the built corpus's, or the configured ones)."""
    folder = built_corpus_folder(wildcards.lang)
    if folder:
        return [f"{folder}/text.txt"]
    return language(wildcards.lang)["text"]


def lid_model_input(wildcards):
    """The LID model as an input when one is configured (so replacing it reruns normalize)."""
    return [config["text"]["lid_model"]] if "lid_model" in config["text"] else []


def lid_option(wildcards, key):
    """One LID flag of `w2vu normalize`; none without a model (the step logs the skip)."""
    if "lid_model" not in config["text"]:
        return ""
    value = {"lid_model": config["text"]["lid_model"],
             "lid_label": language(wildcards.lang).get("lid_label", wildcards.lang),
             "lid_threshold": config["text"]["lid_threshold"]}[key]
    return option(f"--{key.replace('_', '-')}", value)


def user_lexicon_input(wildcards):
    lexicon = language(wildcards.lang).get("lexicon")
    return [lexicon] if lexicon else []


def user_lexicon_option(wildcards, key):
    """The user lexicon (`languages.<name>.lexicon`) and its mode, as flags; none without one."""
    lang_cfg = language(wildcards.lang)
    if "lexicon" not in lang_cfg:
        return ""
    value = {"user_lexicon": lang_cfg["lexicon"], "lexicon_mode": lang_cfg["lexicon_mode"]}[key]
    return option(f"--{key.replace('_', '-')}", value)


# The reference's decoding graphs (fairseq kaldi_initializer): phones to words through the word LM
# and the lexicon, and phones to phones through the phone 6-gram; `_sil` ones absorb <SIL> frames
# like blanks.
GRAPHS = {
    "phn_to_words": {"lm": "words", "silence": False},
    "phn_to_words_sil": {"lm": "words", "silence": True},
    "phn_to_phn_sil": {"lm": "phones", "silence": True},
}


wildcard_constraints:
    graph="|".join(GRAPHS),
    order=r"0[1-9]",


def phone_lm(lang, order):
    return f"results/{lang}/text/phones/lm.phones.filtered.{order:02d}.arpa"


def graph_inputs(wildcards):
    """The dictionary, the LM and (for word graphs) the filtered lexicon of one graph."""
    lang, spec = wildcards.lang, GRAPHS[wildcards.graph]
    inputs = {"dictionary": f"results/{lang}/text/phones/dict.phn.txt"}
    if spec["lm"] == "words":
        inputs["arpa"] = f"results/{lang}/text/lm.words.arpa"
        inputs["lexicon"] = f"results/{lang}/text/lexicon_filtered.lst"
    else:
        inputs["arpa"] = phone_lm(lang, config["text"]["decoding_phone_lm_order"])
    return inputs


def graph_lexicon_args(wildcards):
    if GRAPHS[wildcards.graph]["lm"] != "words":
        return ""
    return shlex.join(["--lexicon", f"results/{wildcards.lang}/text/lexicon_filtered.lst"])


def text_targets(lang):
    """What the text stages of a language end in: phone text, LMs and decoding graphs."""
    orders = {config["text"]["selection_phone_lm_order"],
              config["text"]["decoding_phone_lm_order"]}
    return [f"results/{lang}/text/phones/dict.phn.txt",
            f"results/{lang}/text/phones/lm.phones.filtered.txt",
            f"results/{lang}/text/lexicon_filtered.lst",
            f"results/{lang}/text/lm.words.arpa",
            *(phone_lm(lang, order) for order in sorted(orders)),
            *(f"results/{lang}/text/fst/{graph}/HLG.fst" for graph in config["text"]["graphs"])]
