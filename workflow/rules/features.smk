# Feature stages: layer features per shard of each split manifest, gathered in manifest order;
# then the wav2vec-U chain (k-means, .src, PCA, merge, pool) and the wav2vec-U 2.0 targets.


rule extract:
    input:
        manifest="results/{lang}/manifest/{split}.tsv",
        model=backbone_input,
    output:
        npy=temp("results/{lang}/features/{variant}/shards/{split}/{shard}.npy"),
        lengths=temp("results/{lang}/features/{variant}/shards/{split}/{shard}.lengths"),
    params:
        backbone=lambda w: backbone_of(w.variant),
        mfcc_stack=lambda w: backbone_option(w, "mfcc_stack"),
        mfcc_cmvn=lambda w: backbone_option(w, "mfcc_cmvn"),
        layer=lambda w: backbone_option(w, "layer"),
        normalize=lambda w: backbone_option(w, "normalize"),
        shard=lambda w: int(w.shard),
        shards=config["features"]["shards"],
        device=config["features"]["device"],
        bf16="--bf16" if config["features"]["bf16"] else "--no-bf16",
        tf32="--tf32" if config["features"]["tf32"] else "--no-tf32",
        batch_seconds=config["features"]["batch_seconds"],
        max_chunk_seconds=config["features"]["max_chunk_seconds"],
        out_prefix=subpath(output.npy, strip_suffix=".npy"),
        threads=config["threads"],
    threads: config["threads"]
    resources:
        gpu=1 if config["features"]["gpu"] else 0,
    log:
        "logs/{lang}/extract/{variant}/{split}/{shard}.log",
    benchmark:
        "benchmarks/{lang}/extract/{variant}/{split}/{shard}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu extract --manifest {input.manifest:q} --shard {params.shard}"
        " --shards {params.shards} --backbone {params.backbone:q} {params.mfcc_stack}"
        " {params.mfcc_cmvn} {params.layer} {params.normalize} --device {params.device} {params.bf16}"
        " {params.tf32} --batch-seconds {params.batch_seconds}"
        " --max-chunk-seconds {params.max_chunk_seconds} --threads {params.threads}"
        " --out-prefix {params.out_prefix:q} > {log:q} 2>&1"


rule gather_features:
    input:
        parts=lambda w: expand("results/{lang}/features/{variant}/shards/{split}/{shard}.npy",
                               lang=w.lang, variant=w.variant, split=w.split, shard=FEATURE_SHARDS),
        lengths=lambda w: expand("results/{lang}/features/{variant}/shards/{split}/{shard}.lengths",
                                 lang=w.lang, variant=w.variant, split=w.split, shard=FEATURE_SHARDS),
    output:
        npy="results/{lang}/features/{variant}/{split}.npy",
        lengths="results/{lang}/features/{variant}/{split}.lengths",
    params:
        parts=lambda w, input: [p.removesuffix(".npy") for p in input.parts],
        out_prefix=subpath(output.npy, strip_suffix=".npy"),
    log:
        "logs/{lang}/gather_features/{variant}/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu gather-features --parts {params.parts:q} --out-prefix {params.out_prefix:q}"
        " > {log:q} 2>&1"


rule kmeans:
    input:
        npy=lambda w: f"{cluster_features(w.lang)}/{TRAIN}.npy",
    output:
        centroids="results/{lang}/features/layer/CLUS{k}/centroids.npy",
    params:
        features=lambda w, input: input.npy.removesuffix(".npy"),
        niter=config["features"]["kmeans_niter"],
        nredo=config["features"]["kmeans_nredo"],
        sample_fraction=config["features"]["kmeans_sample_fraction"],
        backend=config["features"]["kmeans_backend"],
        seed=config["features"]["seed"],
        init=config["features"]["kmeans_init"],
        device="cuda" if config["features"]["gpu"] else "cpu",
        threads=config["threads"],
    threads: config["threads"]
    resources:
        gpu=1 if config["features"]["gpu"] else 0,
    log:
        "logs/{lang}/kmeans/CLUS{k}.log",
    benchmark:
        "benchmarks/{lang}/kmeans/CLUS{k}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu kmeans --features {params.features:q} --out {output.centroids:q}"
        " --clusters {wildcards.k} --niter {params.niter} --nredo {params.nredo}"
        " --sample-fraction {params.sample_fraction} --seed {params.seed} --init {params.init:q}"
        " --backend {params.backend}"
        " --device {params.device} --threads {params.threads} > {log:q} 2>&1"


rule assign_clusters:
    input:
        npy=lambda w: f"{cluster_features(w.lang)}/{w.split}.npy",
        centroids="results/{lang}/features/layer/CLUS{k}/centroids.npy",
    output:
        src="results/{lang}/features/layer/CLUS{k}/{split}.src",
    params:
        features=lambda w, input: input.npy.removesuffix(".npy"),
        backend=config["features"]["kmeans_backend"],
        threads=config["threads"],
    threads: config["threads"]
    log:
        "logs/{lang}/assign_clusters/CLUS{k}/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu assign-clusters --features {params.features:q}"
        " --centroids {input.centroids:q} --out {output.src:q} --backend {params.backend}"
        " --threads {params.threads} > {log:q} 2>&1"


rule pca:
    input:
        npy=f"results/{{lang}}/features/layer/{TRAIN}.npy",
    output:
        a="results/{lang}/features/layer/pca/{dim}_pca_A.npy",
        b="results/{lang}/features/layer/pca/{dim}_pca_b.npy",
    params:
        features=subpath(input.npy, strip_suffix=".npy"),
        out_dir="results/{lang}/features/layer/pca",
        backend=config["features"]["kmeans_backend"],
        threads=config["threads"],
    threads: config["threads"]
    log:
        "logs/{lang}/pca/{dim}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu pca --features {params.features:q} --out-dir {params.out_dir:q}"
        " --dim {wildcards.dim} --backend {params.backend} --threads {params.threads} > {log:q} 2>&1"


rule apply_pca:
    input:
        npy="results/{lang}/features/layer/{split}.npy",
        a="results/{lang}/features/layer/pca/{dim}_pca_A.npy",
        b="results/{lang}/features/layer/pca/{dim}_pca_b.npy",
    output:
        npy="results/{lang}/features/layer/precompute_pca{dim}/{split}.npy",
        lengths="results/{lang}/features/layer/precompute_pca{dim}/{split}.lengths",
    params:
        features=subpath(input.npy, strip_suffix=".npy"),
        pca_dir=subpath(input.a, parent=True),
        out_prefix=subpath(output.npy, strip_suffix=".npy"),
        threads=config["threads"],
    threads: config["threads"]
    log:
        "logs/{lang}/apply_pca/{dim}/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu apply-pca --features {params.features:q} --pca-dir {params.pca_dir:q}"
        " --dim {wildcards.dim} --out-prefix {params.out_prefix:q} --threads {params.threads} > {log:q} 2>&1"


rule merge_clusters:
    input:
        npy="results/{lang}/features/layer/precompute_pca{dim}/{split}.npy",
        src="results/{lang}/features/layer/CLUS{k}/{split}.src",
    output:
        npy="results/{lang}/features/layer/precompute_pca{dim}_cls{k}_mean/{split}.npy",
        lengths="results/{lang}/features/layer/precompute_pca{dim}_cls{k}_mean/{split}.lengths",
    params:
        features=subpath(input.npy, strip_suffix=".npy"),
        out_prefix=subpath(output.npy, strip_suffix=".npy"),
    log:
        "logs/{lang}/merge_clusters/{dim}_{k}/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu merge-clusters --features {params.features:q} --units {input.src:q}"
        " --out-prefix {params.out_prefix:q} > {log:q} 2>&1"


rule mean_pool:
    input:
        npy="results/{lang}/features/layer/precompute_pca{dim}_cls{k}_mean/{split}.npy",
    output:
        npy="results/{lang}/features/layer/precompute_pca{dim}_cls{k}_mean_pooled/{split}.npy",
        lengths="results/{lang}/features/layer/precompute_pca{dim}_cls{k}_mean_pooled/{split}.lengths",
    params:
        features=subpath(input.npy, strip_suffix=".npy"),
        out_prefix=subpath(output.npy, strip_suffix=".npy"),
        rate=config["features"]["pool_rate"],
    log:
        "logs/{lang}/mean_pool/{dim}_{k}/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu mean-pool --features {params.features:q} --out-prefix {params.out_prefix:q}"
        " --rate {params.rate} > {log:q} 2>&1"


rule km_targets:
    input:
        npy=f"results/{{lang}}/features/mfcc100/{TRAIN}.npy",
        manifest=f"results/{{lang}}/manifest/{TRAIN}.tsv",
    output:
        km=f"results/{{lang}}/features/layer/{TRAIN}.km",
        centroids="results/{lang}/features/mfcc100/CLUS{k}/centroids.npy".replace(
            "{k}", str(config["features"]["km_clusters"])
        ),
    params:
        mfcc=subpath(input.npy, strip_suffix=".npy"),
        clusters=config["features"]["km_clusters"],
        seed=config["features"]["km_seed"],
        backend=config["features"]["kmeans_backend"],
        threads=config["threads"],
    threads: config["threads"]
    log:
        "logs/{lang}/km_targets.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu km-targets --mfcc {params.mfcc:q} --manifest {input.manifest:q}"
        " --out {output.km:q} --centroids {output.centroids:q} --clusters {params.clusters}"
        " --seed {params.seed} --backend {params.backend} --threads {params.threads} > {log:q} 2>&1"
