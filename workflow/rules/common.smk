# Config validation, path helpers and the command that runs w2vu: everything rules share.
import hashlib
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

REPO = os.path.dirname(workflow.basedir) if os.path.basename(workflow.basedir) == "workflow" else workflow.basedir
sys.path.insert(0, REPO)  # validation uses w2vu's own checks, from this checkout


# Cheap bookkeeping steps run on the submitting node under a cluster executor.
localrules:
    manifest,
    labels,
    audio_summary,
    gan_select,
    scores,


wildcard_constraints:
    lang=r"[A-Za-z0-9_-]+",
    split=r"[A-Za-z0-9_]+",
    shard=r"[0-9]{3}",


def split_names_of(lang_cfg):
    """The splits named by one language's config."""
    splits = lang_cfg["splits"]
    if splits["method"] == "hash":
        return list(splits["fractions"])
    if splits["method"] == "lists":
        return list(splits["lists"])
    return list(splits["names"])


# Languages whose audio and text a rule builds (results/{lang}/{builder}/), not the user.
CORPUS_BUILDERS = {"demo": "corpus", "digits": "digits"}


include: "validation.smk"


SHARDS = [f"{i:03d}" for i in range(config["audio"]["shards"])]

# Rules run `python -m w2vu`. The repository goes on PYTHONPATH, so that conda envs (which hold
# only third-party packages) find the package; without conda, the interpreter running Snakemake
# goes first on PATH, so that `.venv/bin/snakemake` works without activating the venv.
def shell_literal(text):
    """Quote for the shell and escape braces, which Snakemake formats in shell commands."""
    return shlex.quote(text).replace("{", "{{").replace("}", "}}")


_uses_conda = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
_python_dir = os.path.dirname(sys.executable)
# Descriptor 3 keeps the console Snakemake prints to, which a rule's `> {log} 2>&1` leaves
# alone: long jobs write a status line there every minute (w2vu/logs.py, `console_status`).
shell.prefix(
    "set -euo pipefail; exec 3>&2; export W2VU_CONSOLE_FD=3; "
    f'export PYTHONPATH={shell_literal(REPO)}"${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
    + ("" if _uses_conda else f'export PATH={shell_literal(_python_dir)}:"$PATH"; ')
)


def language(lang):
    return config["languages"][lang]


def split_names(lang):
    """The splits of a language, in config order."""
    return split_names_of(language(lang))


def audio_table(lang):
    """The audio table of a language: the built corpus's, the configured one, or None."""
    folder = built_corpus_folder(lang)
    if folder:
        return f"{folder}/audio.tsv"
    return language(lang)["audio"].get("table")


def built_corpus_folder(lang):
    """Where the demo or digits corpus of a language is built, or None for user audio."""
    for key, folder in CORPUS_BUILDERS.items():
        if key in language(lang):
            return f"results/{lang}/{folder}"
    return None


def has_references(lang):
    """True when reference transcripts exist, so that label files and scores are made."""
    lang_cfg = language(lang)
    if built_corpus_folder(lang) or "references" in lang_cfg:
        return True
    table = audio_table(lang)
    if not table:
        return False
    with open(table, encoding="utf-8") as f:
        return "transcript" in f.readline().rstrip("\n").split("\t")


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


def shard_files(pattern, lang, split):
    """`pattern` formatted for every shard of one split of one language."""
    return [pattern.format(lang=lang, split=split, shard=shard) for shard in SHARDS]


def language_shard_files(pattern, lang):
    """`pattern` formatted for every (split, shard) of one language."""
    return [f for split in split_names(lang) for f in shard_files(pattern, lang, split)]


def audio_targets(lang):
    """What the audio stages of a language end in: manifests, labels, summary."""
    targets = [f"results/{lang}/audio/summary.tsv", f"results/{lang}/audio/rejects.tsv"]
    for split in split_names(lang):
        targets.append(f"results/{lang}/manifest/{split}.tsv")
        if has_references(lang):
            targets += [f"results/{lang}/manifest/{split}.{ext}"
                        for ext in ("wrd", "ltr", "given.phn", "phn")]
    return targets


def unpaired_text(wildcards):
    """The unpaired text files of a language (the built corpus's, or the configured ones)."""
    folder = built_corpus_folder(wildcards.lang)
    if folder:
        return [f"{folder}/text.txt"]
    return language(wildcards.lang)["text"]


def lid_model_input(wildcards):
    """The LID model as an input when one is configured (so replacing it reruns normalize)."""
    return [config["text"]["lid_model"]] if "lid_model" in config["text"] else []


def lid_args(wildcards):
    """LID arguments of `w2vu normalize`; none without a model (the step logs the skip)."""
    if "lid_model" not in config["text"]:
        return ""
    label = language(wildcards.lang).get("lid_label", wildcards.lang)
    return shlex.join(["--lid-model", config["text"]["lid_model"], "--lid-label", label,
                       "--lid-threshold", str(config["text"]["lid_threshold"])])


def user_lexicon_input(wildcards):
    lexicon = language(wildcards.lang).get("lexicon")
    return [lexicon] if lexicon else []


def user_lexicon_args(wildcards):
    """User-lexicon arguments of `w2vu lexicon`."""
    lang_cfg = language(wildcards.lang)
    if "lexicon" not in lang_cfg:
        return ""
    return shlex.join(["--user-lexicon", lang_cfg["lexicon"], "--mode", lang_cfg["lexicon_mode"]])


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


def lmplz_args(wildcards):
    lmplz = config["text"].get("lmplz")
    return shlex.join(["--lmplz", lmplz]) if lmplz else ""


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


# Feature variants: `layer` = the configured backbone (SSL layer or MFCC), `unnormalized` = the
# same model on the raw waveform (only with features.cluster_unnormalized), `mfcc100` = 39-d
# 100 Hz MFCC for the wav2vec-U 2.0 k-means targets.
FEATURE_SHARDS = [f"{i:03d}" for i in range(config["features"]["shards"])]
TRAIN = config["features"]["train_split"]


wildcard_constraints:
    variant="layer|unnormalized|mfcc100",
    k=r"[0-9]+",
    dim=r"[0-9]+",


def backbone_input(wildcards):
    """The model file or folder as an input, so that replacing it reruns extraction."""
    backbone = config["features"]["backbone"]
    return [] if backbone == "mfcc" or wildcards.variant == "mfcc100" else [backbone]


def backbone_args(variant):
    """`w2vu extract` arguments naming the backbone of a feature variant."""
    cfg = config["features"]
    if variant == "mfcc100":
        return "--backbone mfcc --mfcc-stack 1"
    if cfg["backbone"] == "mfcc":
        cmvn = " --mfcc-cmvn" if cfg["mfcc_cmvn"] else ""
        return f"--backbone mfcc --mfcc-stack {cfg['mfcc_stack']}{cmvn}"
    normalize = "no" if variant == "unnormalized" else cfg["normalize"]
    return shlex.join(["--backbone", cfg["backbone"], "--layer", str(cfg["layer"]),
                       "--normalize", normalize])


def backbone_dim():
    """The feature dimension when it can be known before extraction (MFCC, HF folder), or None."""
    cfg = config["features"]
    if cfg["backbone"] == "mfcc":
        return 39 * cfg["mfcc_stack"]
    model_config = os.path.join(cfg["backbone"], "config.json")
    if os.path.isfile(model_config):
        import json

        with open(model_config, encoding="utf-8") as f:
            return json.load(f).get("hidden_size")
    return None


def pca_dim():
    """The PCA dimension in output names: the configured one, capped at the feature dimension."""
    dim = backbone_dim()
    return min(config["features"]["pca_dim"], dim) if dim else config["features"]["pca_dim"]


def cluster_features(lang):
    """Where k-means and cluster assignment read features (see features.cluster_unnormalized)."""
    unnormalized = config["features"]["cluster_unnormalized"] and config["features"]["backbone"] != "mfcc"
    return f"results/{lang}/features/{'unnormalized' if unnormalized else 'layer'}"


def feature_targets(lang):
    """The GAN inputs of a language: the wav2vec-U chain and/or the 2.0 inputs."""
    cfg, targets = config["features"], []
    base = f"results/{lang}/features/layer"
    if "wav2vec_u" in cfg["gan_inputs"]:
        pooled = f"{base}/precompute_pca{pca_dim()}_cls{cfg['clusters']}_mean_pooled"
        targets += [f"{pooled}/{split}.npy" for split in split_names(lang)]
    if "wav2vec_u2" in cfg["gan_inputs"]:
        targets += [f"{base}/{split}.npy" for split in split_names(lang)]
        targets.append(f"{base}/{TRAIN}.km")
    return targets


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


def gan_args(wildcards, input):
    """`w2vu gan-train` arguments of one run."""
    run = GAN_RUNS[wildcards.run]
    args = ["--variant", wildcards.gan_variant[-1], "--seed", str(run["seed"]),
            "--features", input.train.removesuffix(".npy"),
            "--valid-features", input.valid.removesuffix(".npy")]
    for key in ("code_penalty", "gradient_penalty", "smoothness"):
        if run[key] is not None:
            args += [f"--{key.replace('_', '-')}", str(run[key])]
    if "km" in input.keys():
        args += ["--km", input.km]
    if "valid_phn" in input.keys():
        args += ["--valid-phn", input.valid_phn]
    return shlex.join(args)


def gan_model_args():
    """`w2vu gan-train` flags of the discriminator size and learning rates that are set."""
    keys = ("discriminator_dim", "lr_generator", "lr_discriminator")
    return " ".join(f"--{k.replace('_', '-')} {config['gan'][k]}" for k in keys
                    if config["gan"][k] is not None)


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


def transcript(lang, stage, split):
    return f"results/{lang}/transcripts/{stage}/{split}.txt"


def gan_emissions(lang, split):
    """Frame log-probs of the selected generator on a split (prefix of .npy/.lengths)."""
    return f"results/{lang}/transcripts/gan_viterbi/{split}.emissions"


def selftrain_features(lang, split):
    """Self-training input (prefix): un-pooled PCA features (the reference's natural choice) or
    the layer features."""
    if config["selftrain"]["hmm_features"] == "pca":
        return f"results/{lang}/features/layer/precompute_pca{pca_dim()}/{split}"
    return f"results/{lang}/features/layer/{split}"


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


def ctc_model_args():
    """`ctc-train` arguments of the configured CTC model: the backbone to fine-tune with its
    schedule, or the small encoder's."""
    cfg = config["selftrain"]
    if CTC_FINETUNE:
        return shlex.join([
            "--init", config["features"]["backbone"], "--lr", str(cfg["finetune_lr"]),
            "--batch-seconds", str(cfg["finetune_batch_seconds"]),
            "--max-updates", str(cfg["finetune_max_updates"]),
            "--max-epochs", str(cfg["finetune_max_epochs"]),
            "--bf16" if cfg["finetune_bf16"] else "--no-bf16"])
    return shlex.join(["--max-updates", str(cfg["ctc_max_updates"]),
                       "--max-epochs", str(cfg["ctc_max_epochs"])])


wildcard_constraints:
    ctc_round=r"[1-9][0-9]*",


def ctc_round_dir(lang, ctc_round):
    return f"results/{lang}/selftrain/ctc/iter{ctc_round}"


def ctc_labels(lang, ctc_round):
    """What a CTC round learns from: the HMM's train transcripts, then the best kept round's."""
    if ctc_round == 1:
        return transcript(lang, "hmm", TRAIN)
    return f"{ctc_round_dir(lang, ctc_round)}/labels.txt"


def ctc_stages(lang):
    """(stage, split -> transcript) of every CTC round and of the final self-trained output."""
    stages = [(f"ctc_iter{r}", lambda split, r=r: f"{ctc_round_dir(lang, r)}/transcripts/{split}.txt")
              for r in range(1, CTC_ROUNDS + 1)]
    return stages + [("selftrained", lambda split: transcript(lang, "selftrained", split))]


# Stages scored against the phone references; baselines and probes bracket the GAN's PER.
BASELINE_STAGES = ("baseline_frequent_phone", "baseline_random_generator")


def probe_stages():
    return [f"probe_w2vu{v}" for v in config["gan"]["variants"]]


def score_rows(lang):
    """(stage, split, metric, hypothesis, reference) of every scored output of a language."""
    rows = []
    for split in split_names(lang):
        phn = f"results/{lang}/manifest/{split}.phn"
        for stage in ("gan_viterbi", *BASELINE_STAGES, *probe_stages(), "hmm"):
            rows.append((stage, split, "per", transcript(lang, stage, split), phn))
        for stage, path in ctc_stages(lang):
            rows.append((stage, split, "per", path(split), phn))
        rows.append(("gan_wfst", split, "wer", transcript(lang, "gan_wfst", split),
                     f"results/{lang}/manifest/{split}.wrd"))
    return rows


def score_inputs(wildcards):
    return sorted({path for row in score_rows(wildcards.lang) for path in row[3:]})


def score_args(wildcards):
    return shlex.join(arg for row in score_rows(wildcards.lang) for arg in ("--row", *row))


def gan_transcript_targets(lang):
    """GAN transcripts of every split, and the scores table when references exist."""
    targets = [transcript(lang, stage, split) for split in split_names(lang)
               for stage in ("gan_viterbi", "gan_wfst", "hmm", "selftrained")]
    if has_references(lang):
        targets.append(f"results/{lang}/scores.tsv")
    return targets


def all_targets():
    """Every final output of every configured language."""
    return [t for lang in config["languages"]
            for t in audio_targets(lang) + text_targets(lang) + feature_targets(lang)
            + gan_targets(lang) + gan_transcript_targets(lang) + report_targets(lang)
            + model_targets(lang)]


# Report figures (workflow/rules/report.smk): each only where this config makes its inputs.
def producible(path):
    """True when a rule of the workflow makes `path`, so a figure may ask for it."""
    return any(rule.is_producer(path) for rule in workflow.rules)


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


# The finished recognizer (workflow/rules/model.smk): everything from waveform to words, gathered
# into results/{lang}/model/ by `w2vu model`.
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


def model_args(wildcards, input):
    """`w2vu model` options naming each input (graph folders, the rounds' folder)."""
    args = []
    for name in input.keys():
        path = input[name]
        if name == "checkpoints":
            continue
        if name in ("word_graph", "phone_graph"):
            path = [os.path.dirname(path)]
        elif name == "ctc_rounds":
            path = [os.path.dirname(os.path.dirname(path[0]))]
        args += [f"--{name.replace('_', '-')}", *([path] if isinstance(path, str) else path)]
    return shlex.join(args)


def model_config():
    """The whole config as JSON, kept in model.json."""
    import json

    return json.dumps(config, sort_keys=True)


def model_targets(lang):
    return [f"results/{lang}/model"]
