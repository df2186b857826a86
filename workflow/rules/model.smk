# The finished recognizer: the pieces of a run from waveform to words, hard-linked (or copied) into
# results/{lang}/model/ with model.json, so that `w2vu transcribe --model` works on new audio and
# the folder can be moved. model.system chooses what gives the phones (default: what the run
# ended with).


rule model:
    input:
        unpack(model_inputs),
    output:
        directory("results/{lang}/model"),
    params:
        args=model_args,
        recipe=model_recipe(),
        config=model_config(),
        system=model_system(),
    log:
        "logs/{lang}/model.log",
    benchmark:
        "benchmarks/{lang}/model.tsv"
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu model {params.args} --recipe {params.recipe:q} --config {params.config:q}"
        " --system {params.system:q} --out-dir {output:q} > {log:q} 2>&1"
