# Path and argument helpers of the finished recognizer (rules/model.smk): everything from
# waveform to words, gathered into results/{lang}/model/ by `w2vu model`.


def model_system():
    """`model.system`, checked against the configured number of CTC rounds."""
    system = config["model"]["system"]
    if system.startswith("ctc_iter") and int(system[8:]) > CTC_ROUNDS:
        raise WorkflowError(f"config: model.system={system}, but selftrain.ctc_iterations is "
                            f"{CTC_ROUNDS}; choose a round up to ctc_iter{CTC_ROUNDS}")
    return system


def model_recipe():
    """The settings `w2vu transcribe` repeats, as JSON (a param: changing one reassembles)."""
    import json

    audio, feats, selftrain = config["audio"], config["features"], config["selftrain"]
    return json.dumps({
        "audio": {"min_seconds": audio["min_seconds"], "max_seconds": audio["max_seconds"],
                  "extensions": audio["extensions"], "vad": audio["vad"], "trim": audio["trim"]},
        "features": {"backbone": "mfcc" if feats["backbone"] == "mfcc" else "model",
                     "source": feats["backbone"],
                     **{k: feats[k] for k in ("mfcc_stack", "layer", "normalize",
                                              "cluster_unnormalized", "batch_seconds",
                                              "max_chunk_seconds", "clusters", "kmeans_backend",
                                              "bf16", "tf32")},
                     "pca_dim": pca_dim()},
        "gan": {"decode_stride": config["gan"]["decode_stride"]},
        "selftrain": {"hmm_features": selftrain["hmm_features"],
                      "ctc_lm_decode": selftrain["ctc_lm_decode"], "ctc_finetune": CTC_FINETUNE},
    }, sort_keys=True)


def model_inputs(wildcards):
    """What the model folder is assembled from; the optional ones only where the config makes
    them. The key names are `w2vu model`'s option names."""
    lang, feats = wildcards.lang, config["features"]
    text = f"results/{lang}/text"
    inputs = {
        "dictionary": f"{text}/phones/dict.phn.txt",
        "lexicon": f"{text}/lexicon_filtered.lst",
        "word_graph": f"{text}/fst/{config['decode']['graph']}/HLG.fst",
        "decode_choice": f"results/{lang}/decode/gan_wfst/choice.json",
        "gan_selection": f"results/{lang}/gan/selected.json",
        "checkpoints": gan_targets(lang),
        "hmm_model": f"results/{lang}/selftrain/hmm/model.pkl",
        "hmm_tuning": f"results/{lang}/selftrain/hmm/tune/tuning.tsv",
        "hmm_decision": f"{ctc_round_dir(lang, 0)}/round.json",
        "phone_lm": phone_lm(lang, config["text"]["decoding_phone_lm_order"]),
        "ctc_decision": f"{ctc_round_dir(lang, CTC_ROUNDS)}/round.json",
        "ctc_rounds": [f"{ctc_round_dir(lang, r)}/{name}" for r in range(1, CTC_ROUNDS + 1)
                       for name in ("model.pt", "round.json")],
    }
    if "wav2vec_u" in feats["gan_inputs"] or config["selftrain"]["hmm_features"] == "pca":
        inputs["pca"] = [f"results/{lang}/features/layer/pca/{pca_dim()}_pca_{m}.npy"
                         for m in ("A", "b")]
    if "wav2vec_u" in feats["gan_inputs"]:
        inputs["centroids"] = f"results/{lang}/features/layer/CLUS{feats['clusters']}/centroids.npy"
    if feats["backbone"] != "mfcc":
        inputs["backbone"] = feats["backbone"]
    if config["selftrain"]["ctc_lm_decode"]:
        inputs["phone_graph"] = f"{text}/fst/phn_to_phn_sil/HLG.fst"
    if has_references(lang):
        inputs["scores"] = f"results/{lang}/scores.tsv"
    return inputs


def model_option(input, key):
    """One `w2vu model` flag naming an input of the model rule (a graph by its folder, the CTC
    rounds by theirs); nothing where this config makes no such input."""
    path = input.get(key)
    if not path:
        return ""
    if key in ("word_graph", "phone_graph"):
        path = os.path.dirname(path)
    elif key == "ctc_rounds":
        path = os.path.dirname(os.path.dirname(path[0]))
    return shlex.join([f"--{key.replace('_', '-')}", *([path] if isinstance(path, str) else path)])


def model_config():
    """The whole config as JSON, kept in model.json."""
    import json

    return json.dumps(config, sort_keys=True)


def model_targets(lang):
    return [f"results/{lang}/model"]
