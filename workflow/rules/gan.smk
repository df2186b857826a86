# GAN training: one job per run of the sweep; rolling checkpoints (checkpoint_last.pt) sit next
# to the declared outputs, so an interrupted job resumes where it stopped.


rule gan_train:
    input:
        unpack(gan_inputs),
    output:
        best="results/{lang}/gan/{gan_variant}/{run}/best.pt",
        metrics="results/{lang}/gan/{gan_variant}/{run}/metrics.tsv",
    params:
        args=gan_args,
        out_dir=subpath(output.best, parent=True),
        max_updates=config["gan"]["max_updates"],
        validate_every=config["gan"]["validate_every"],
        batch_size=config["gan"]["batch_size"],
        device=config["gan"]["device"],
        bf16="--bf16" if config["gan"]["bf16"] else "",
    threads: 2
    resources:
        gpu=1 if config["gan"]["gpu"] else 0,
    log:
        "logs/{lang}/gan_train/{gan_variant}/{run}.log",
    benchmark:
        "benchmarks/{lang}/gan_train/{gan_variant}/{run}.tsv"
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m w2vu gan-train {params.args} --text {input.text:q}"
        " --dictionary {input.dictionary:q} --lm {input.lm:q} --out-dir {params.out_dir:q}"
        " --max-updates {params.max_updates} --validate-every {params.validate_every}"
        " --batch-size {params.batch_size} --device {params.device} {params.bf16}"
        " --threads {threads} > {log:q} 2>&1"
