# Path and argument helpers of the feature rules (rules/features.smk).


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


def backbone_of(variant):
    """`w2vu extract --backbone` of a feature variant: MFCC for the 2.0 targets, else the
    configured backbone."""
    return "mfcc" if variant == "mfcc100" else config["features"]["backbone"]


def backbone_option(wildcards, key):
    """One `w2vu extract` backbone flag of a feature variant, or nothing where it does not apply:
    the MFCC settings for MFCC (the 2.0 targets: 39-d, unstacked), the layer and waveform
    normalisation for a model (`unnormalized`: never normalised)."""
    cfg, variant = config["features"], wildcards.variant
    mfcc = backbone_of(variant) == "mfcc"
    value = {
        "mfcc_stack": (1 if variant == "mfcc100" else cfg["mfcc_stack"]) if mfcc else None,
        "mfcc_cmvn": cfg["mfcc_cmvn"] and variant != "mfcc100" if mfcc else None,
        "layer": None if mfcc else cfg["layer"],
        "normalize": None if mfcc else "no" if variant == "unnormalized" else cfg["normalize"],
    }[key]
    return option(f"--{key.replace('_', '-')}", value)


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
