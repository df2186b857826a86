# GAN training: one job per run of the sweep; rolling checkpoints (checkpoint_last.pt) sit next
# to the declared outputs, so an interrupted job resumes where it stopped.


rule gan_train:
    input:
        unpack(gan_inputs),
    output:
        best="results/{lang}/gan/{gan_variant}/{run}/best.pt",
        metrics="results/{lang}/gan/{gan_variant}/{run}/metrics.tsv",
        info="results/{lang}/gan/{gan_variant}/{run}/run.json",
    params:
        variant=lambda w: w.gan_variant[-1],
        seed=lambda w: GAN_RUNS[w.run]["seed"],
        features=subpath(input.train, strip_suffix=".npy"),
        valid_features=subpath(input.valid, strip_suffix=".npy"),
        code_penalty=lambda w: gan_run_option(w, "code_penalty"),
        gradient_penalty=lambda w: gan_run_option(w, "gradient_penalty"),
        smoothness=lambda w: gan_run_option(w, "smoothness"),
        km=lambda w, input: option("--km", input.get("km")),
        valid_phn=lambda w, input: option("--valid-phn", input.get("valid_phn")),
        out_dir=subpath(output.best, parent=True),
        max_updates=config["gan"]["max_updates"],
        validate_every=config["gan"]["validate_every"],
        keep=config["gan"]["keep"],
        batch_size=config["gan"]["batch_size"],
        discriminator_dim=option("--discriminator-dim", config["gan"]["discriminator_dim"]),
        discriminator_depth=option("--discriminator-depth", config["gan"]["discriminator_depth"]),
        lr_generator=option("--lr-generator", config["gan"]["lr_generator"]),
        lr_discriminator=option("--lr-discriminator", config["gan"]["lr_discriminator"]),
        device=config["gan"]["device"],
        bf16=option("--bf16", config["gan"]["bf16"]),
        threads=config["gan"]["threads"],
    threads: config["gan"]["threads"]
    resources:
        gpu=1 if config["gan"]["gpu"] else 0,
    log:
        "logs/{lang}/gan_train/{gan_variant}/{run}.log",
    benchmark:
        "benchmarks/{lang}/gan_train/{gan_variant}/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu gan-train --variant {params.variant} --seed {params.seed}"
        " --features {params.features:q} --valid-features {params.valid_features:q}"
        " {params.code_penalty} {params.gradient_penalty} {params.smoothness} {params.km}"
        " {params.valid_phn} --text {input.text:q} --dictionary {input.dictionary:q}"
        " --lm {input.lm:q} --out-dir {params.out_dir:q} --max-updates {params.max_updates}"
        " --validate-every {params.validate_every} --keep {params.keep} --batch-size {params.batch_size}"
        " {params.discriminator_dim} {params.discriminator_depth} {params.lr_generator}"
        " {params.lr_discriminator}"
        " --device {params.device} {params.bf16} --threads {params.threads} > {log:q} 2>&1"


# Selection across every run of the sweep (all configured variants): selected.json holds the
# whole table, so a user sees why a run won.
rule gan_select:
    input:
        metrics=lambda w: [f"{d}/metrics.tsv" for d in gan_run_dirs(w.lang)],
        info=lambda w: [f"{d}/run.json" for d in gan_run_dirs(w.lang)],
    output:
        "results/{lang}/gan/selected.json",
    params:
        runs=lambda w: gan_run_dirs(w.lang),
        selection=config["gan"]["selection"],
        paper_tolerance=config["gan"]["paper_tolerance"],
    log:
        "logs/{lang}/gan_select.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu gan-select --runs {params.runs:q} --selection {params.selection}"
        " --paper-tolerance {params.paper_tolerance} --out {output:q} > {log:q} 2>&1"


# Viterbi transcripts of the selected run on every split; the frame log-probs go along for WFST
# decoding. Every run's best.pt is an input, since any of them may be the one selected.
rule gan_generate:
    input:
        selection="results/{lang}/gan/selected.json",
        checkpoints=lambda w: [f"{d}/best.pt" for d in gan_run_dirs(w.lang)],
        features=lambda w: [f"{p}.npy" for p in gan_split_features(w.lang, w.split).values()],
        dictionary="results/{lang}/text/phones/dict.phn.txt",
    output:
        txt="results/{lang}/transcripts/gan_viterbi/{split}.txt",
        units="results/{lang}/transcripts/gan_viterbi/{split}_units.txt",
        emissions=multiext("results/{lang}/transcripts/gan_viterbi/{split}.emissions", ".npy", ".lengths"),
    params:
        features=lambda w: [f"{v}={p}" for v, p in gan_split_features(w.lang, w.split).items()],
        out_dir=subpath(output.txt, parent=True),
        decode_stride=option("--decode-stride", config["gan"]["decode_stride"]),
        device=config["gan"]["device"],
        threads=config["threads"],
    threads: config["threads"]
    log:
        "logs/{lang}/gan_generate/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu gan-generate --selection {input.selection:q} --features {params.features:q}"
        " --dictionary {input.dictionary:q} --out-dir {params.out_dir:q} --split {wildcards.split}"
        " {params.decode_stride} --emissions --device {params.device} --threads {params.threads}"
        " > {log:q} 2>&1"


# Baselines computed the same way as the GAN's PER: the commonest phone of the unpaired text,
# its best constant sentence (below), and a generator with random (seeded) weights. Baselines
# and probes only bracket the GAN's PER: one that cannot run on the data (--note-failure) leaves
# a note that scores.tsv reports as `failed` with the reason, and the run goes on.
rule baseline_frequent_phone:
    input:
        text="results/{lang}/text/phones/lm.phones.filtered.txt",
        references="results/{lang}/manifest/{split}.phn",
    output:
        "results/{lang}/transcripts/baseline_frequent_phone/{split}.txt",
    log:
        "logs/{lang}/baseline_frequent_phone/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu baseline-frequent-phone --text {input.text:q}"
        " --references {input.references:q} --out {output:q} --note-failure > {log:q} 2>&1"


# Audio-blind: one sentence of the unpaired text, the one that scores best against the text
# itself, said for every utterance. Where the text is predictable (the digits grammar) it is far
# stronger than the commonest phone.
rule baseline_constant_sentence:
    input:
        text="results/{lang}/text/phones/lm.phones.filtered.txt",
        references="results/{lang}/manifest/{split}.phn",
    output:
        "results/{lang}/transcripts/baseline_constant_sentence/{split}.txt",
    log:
        "logs/{lang}/baseline_constant_sentence/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu baseline-constant-sentence --text {input.text:q}"
        " --references {input.references:q} --out {output:q} --note-failure > {log:q} 2>&1"


# The same for the word decoders: the unpaired word text's best sentence, scored as WER.
rule baseline_constant_words:
    input:
        text="results/{lang}/text/normalized.txt",
        references="results/{lang}/manifest/{split}.wrd",
    output:
        "results/{lang}/transcripts/baseline_constant_words/{split}.txt",
    log:
        "logs/{lang}/baseline_constant_words/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu baseline-constant-words --text {input.text:q}"
        " --references {input.references:q} --out {output:q} --note-failure > {log:q} 2>&1"


rule baseline_random_checkpoint:
    input:
        dictionary="results/{lang}/text/phones/dict.phn.txt",
        features=lambda w: gan_feature_prefix(w.lang, f"w2vu{config['gan']['variants'][0]}", TRAIN) + ".npy",
    output:
        "results/{lang}/gan/baseline_random/best.pt",
    params:
        variant=config["gan"]["variants"][0],
        features=subpath(input.features, strip_suffix=".npy"),
    log:
        "logs/{lang}/baseline_random_checkpoint.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu baseline-random-checkpoint --dictionary {input.dictionary:q}"
        " --features {params.features:q} --variant {params.variant} --out {output:q}"
        " --note-failure > {log:q} 2>&1"


rule baseline_random_generator:
    input:
        checkpoint="results/{lang}/gan/baseline_random/best.pt",
        features=lambda w: [f"{p}.npy" for p in gan_split_features(w.lang, w.split).values()],
        dictionary="results/{lang}/text/phones/dict.phn.txt",
    output:
        txt="results/{lang}/transcripts/baseline_random_generator/{split}.txt",
        units="results/{lang}/transcripts/baseline_random_generator/{split}_units.txt",
    params:
        features=lambda w: [f"{v}={p}" for v, p in gan_split_features(w.lang, w.split).items()],
        out_dir=subpath(output.txt, parent=True),
    log:
        "logs/{lang}/baseline_random_generator/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu baseline-random-generator --checkpoint {input.checkpoint:q}"
        " --features {params.features:q} --dictionary {input.dictionary:q}"
        " --out-dir {params.out_dir:q} --split {wildcards.split} --device cpu --note-failure"
        " > {log:q} 2>&1"


# The supervised ceiling: a linear CTC probe on each variant's GAN input, trained on the train
# split's reference phones.
rule probe_train:
    input:
        features=lambda w: gan_feature_prefix(w.lang, w.gan_variant, TRAIN) + ".npy",
        phn=lambda w: f"results/{w.lang}/manifest/{TRAIN}.phn",
        dictionary="results/{lang}/text/phones/dict.phn.txt",
    output:
        "results/{lang}/probe/{gan_variant}/probe.pt",
    params:
        features=subpath(input.features, strip_suffix=".npy"),
        steps=config["probe"]["steps"],
        batch_size=config["probe"]["batch_size"],
        lr=config["probe"]["lr"],
        seed=config["probe"]["seed"],
        threads=config["threads"],
    threads: config["threads"]
    log:
        "logs/{lang}/probe_train/{gan_variant}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu probe-train --features {params.features:q} --phn {input.phn:q}"
        " --dictionary {input.dictionary:q} --out {output:q} --steps {params.steps}"
        " --batch-size {params.batch_size} --lr {params.lr} --seed {params.seed}"
        " --threads {params.threads} --note-failure > {log:q} 2>&1"


rule probe_decode:
    input:
        probe="results/{lang}/probe/{gan_variant}/probe.pt",
        features=lambda w: gan_feature_prefix(w.lang, w.gan_variant, w.split) + ".npy",
        phn="results/{lang}/manifest/{split}.phn",
        dictionary="results/{lang}/text/phones/dict.phn.txt",
    output:
        "results/{lang}/transcripts/probe_{gan_variant}/{split}.txt",
    params:
        features=subpath(input.features, strip_suffix=".npy"),
    log:
        "logs/{lang}/probe_decode/{gan_variant}/{split}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu probe-decode --probe {input.probe:q} --features {params.features:q}"
        " --phn {input.phn:q} --dictionary {input.dictionary:q} --out {output:q} --note-failure"
        " > {log:q} 2>&1"


rule score:
    input:
        score_inputs,
    output:
        "results/{lang}/scores.tsv",
    params:
        rows=score_args,
    log:
        "logs/{lang}/score.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu score {params.rows} --out {output:q} > {log:q} 2>&1"
