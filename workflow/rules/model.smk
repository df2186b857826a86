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
        word_graph=lambda w, input: model_option(input, "word_graph"),
        ctc_rounds=lambda w, input: model_option(input, "ctc_rounds"),
        pca=lambda w, input: model_option(input, "pca"),
        centroids=lambda w, input: model_option(input, "centroids"),
        backbone=lambda w, input: model_option(input, "backbone"),
        phone_graph=lambda w, input: model_option(input, "phone_graph"),
        scores=lambda w, input: model_option(input, "scores"),
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
        "python -m w2vu model --dictionary {input.dictionary:q} --lexicon {input.lexicon:q}"
        " {params.word_graph} --decode-choice {input.decode_choice:q}"
        " --gan-selection {input.gan_selection:q} --hmm-model {input.hmm_model:q}"
        " --hmm-tuning {input.hmm_tuning:q} --hmm-decision {input.hmm_decision:q}"
        " --phone-lm {input.phone_lm:q} --ctc-decision {input.ctc_decision:q} {params.ctc_rounds}"
        " {params.pca} {params.centroids} {params.backbone} {params.phone_graph} {params.scores}"
        " --recipe {params.recipe:q} --config {params.config:q} --system {params.system:q}"
        " --out-dir {output:q} > {log:q} 2>&1"
