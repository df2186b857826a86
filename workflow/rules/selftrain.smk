# WFST decoding of the selected GAN's emissions and self-training on its pseudo-labels.


# The decoding settings are chosen on the tuning split without references (reference §3.2), then
# every split is decoded with them.
rule wfst_tune:
    input:
        emissions=lambda w: multiext(gan_emissions(w.lang, config["decode"]["tune_split"]), ".npy", ".lengths"),
        viterbi=lambda w: transcript(w.lang, "gan_viterbi", config["decode"]["tune_split"]),
        graph=lambda w: f"results/{w.lang}/text/fst/{config['decode']['graph']}/HLG.fst",
        lexicon="results/{lang}/text/lexicon_filtered.lst",
        lm="results/{lang}/text/lm.words.arpa",
    output:
        table="results/{lang}/decode/gan_wfst/tuning.tsv",
        choice="results/{lang}/decode/gan_wfst/choice.json",
    params:
        emissions=lambda w: gan_emissions(w.lang, config["decode"]["tune_split"]),
        graph_dir=lambda w: f"results/{w.lang}/text/fst/{config['decode']['graph']}",
        acoustic_scales=config["decode"]["acoustic_scales"],
        blank_weights=config["decode"]["blank_weights"],
        blank_mode=config["decode"]["blank_mode"],
        sil_is_blank="--sil-is-blank" if config["decode"]["sil_is_blank"] else "",
        beam=config["decode"]["beam"],
        min_vt_uer=config["decode"]["min_vt_uer"],
        threads=config["threads"],
    threads: config["threads"]
    log:
        "logs/{lang}/wfst_tune.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu wfst-tune --emissions {params.emissions:q} --graph-dir {params.graph_dir:q}"
        " --viterbi {input.viterbi:q} --lexicon {input.lexicon:q} --lm {input.lm:q}"
        " --acoustic-scales {params.acoustic_scales} --blank-weights {params.blank_weights}"
        " --blank-mode {params.blank_mode} {params.sil_is_blank} --beam {params.beam}"
        " --min-vt-uer {params.min_vt_uer} --out-tsv {output.table:q} --out-json {output.choice:q}"
        " --threads {params.threads} > {log:q} 2>&1"


rule wfst_decode:
    input:
        choice="results/{lang}/decode/gan_wfst/choice.json",
        emissions=lambda w: multiext(gan_emissions(w.lang, w.split), ".npy", ".lengths"),
        graph=lambda w: f"results/{w.lang}/text/fst/{config['decode']['graph']}/HLG.fst",
    output:
        "results/{lang}/transcripts/gan_wfst/{split}.txt",
    params:
        emissions=lambda w: gan_emissions(w.lang, w.split),
        graph_dir=lambda w: f"results/{w.lang}/text/fst/{config['decode']['graph']}",
        threads=config["threads"],
    threads: config["threads"]
    log:
        "logs/{lang}/wfst_decode/{split}.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu wfst-decode --choice {input.choice:q} --emissions {params.emissions:q}"
        " --graph-dir {params.graph_dir:q} --out {output:q} --threads {params.threads} > {log:q} 2>&1"


# The GAN's words as phones through the lexicon: scored as PER in every run, and self-training's
# pseudo-labels with `selftrain.labels: gan_wfst`.
rule wfst_phones:
    input:
        words="results/{lang}/transcripts/gan_wfst/{split}.txt",
        lexicon="results/{lang}/text/lexicon_filtered.lst",
    output:
        "results/{lang}/transcripts/gan_wfst_phones/{split}.txt",
    log:
        "logs/{lang}/wfst_phones/{split}.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu wfst-phones --words {input.words:q} --lexicon {input.lexicon:q}"
        " --out {output:q} > {log:q} 2>&1"


# HMM self-training (reference §4.1, mono stage): GMM-HMMs trained on the GAN's train-split
# pseudo-labels (`selftrain.labels`), the LM weight chosen on the tuning split against them,
# every split decoded with the phone LM.
rule hmm_train:
    input:
        features=lambda w: selftrain_features(w.lang, TRAIN) + ".npy",
        labels=lambda w: selftrain_labels(w.lang, TRAIN),
        dictionary="results/{lang}/text/phones/dict.phn.txt",
    output:
        "results/{lang}/selftrain/hmm/model.pkl",
    params:
        features=lambda w: selftrain_features(w.lang, TRAIN),
        iters=config["selftrain"]["hmm_iters"],
        gaussians=config["selftrain"]["hmm_gaussians"],
        delta_order=config["selftrain"]["hmm_delta_order"],
        max_utterances=option("--max-utterances", config["selftrain"]["hmm_max_utterances"]),
        seed=config["selftrain"]["seed"],
    log:
        "logs/{lang}/hmm_train.log",
    benchmark:
        "benchmarks/{lang}/hmm_train.tsv"
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu hmm-train --features {params.features:q} --labels {input.labels:q}"
        " --dictionary {input.dictionary:q} --out {output:q} --iters {params.iters}"
        " --gaussians {params.gaussians} --delta-order {params.delta_order}"
        " {params.max_utterances} --seed {params.seed} > {log:q} 2>&1"


rule hmm_tune:
    input:
        model="results/{lang}/selftrain/hmm/model.pkl",
        features=lambda w: selftrain_features(w.lang, config["selftrain"]["tune_split"]) + ".npy",
        labels=lambda w: selftrain_labels(w.lang, config["selftrain"]["tune_split"]),
        lm=lambda w: phone_lm(w.lang, config["text"]["decoding_phone_lm_order"]),
    output:
        "results/{lang}/selftrain/hmm/tune/tuning.tsv",
    params:
        features=lambda w: selftrain_features(w.lang, config["selftrain"]["tune_split"]),
        lm_weights=config["selftrain"]["hmm_lm_weights"],
    log:
        "logs/{lang}/hmm_tune.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu hmm-tune --model {input.model:q} --features {params.features:q}"
        " --lm {input.lm:q} --labels {input.labels:q} --lm-weights {params.lm_weights}"
        " --out-tsv {output:q} > {log:q} 2>&1"


rule hmm_decode:
    input:
        model="results/{lang}/selftrain/hmm/model.pkl",
        tuning="results/{lang}/selftrain/hmm/tune/tuning.tsv",
        features=lambda w: selftrain_features(w.lang, w.split) + ".npy",
        lm=lambda w: phone_lm(w.lang, config["text"]["decoding_phone_lm_order"]),
    output:
        "results/{lang}/transcripts/hmm/{split}.txt",
    params:
        features=lambda w: selftrain_features(w.lang, w.split),
    log:
        "logs/{lang}/hmm_decode/{split}.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu hmm-decode --model {input.model:q} --tuning {input.tuning:q}"
        " --features {params.features:q} --lm {input.lm:q} --out {output:q} > {log:q} 2>&1"


# The HMM's words (`selftrain.hmm_words`, the reference's decode_word_step): the same model over
# HCLG built from the word LM and the lexicon, the LM weight chosen on the tuning split by the
# word LM's perplexity and the pronunciations' error against the pseudo-labels.
rule hmm_word_tune:
    input:
        model="results/{lang}/selftrain/hmm/model.pkl",
        features=lambda w: selftrain_features(w.lang, config["selftrain"]["tune_split"]) + ".npy",
        labels=lambda w: selftrain_labels(w.lang, config["selftrain"]["tune_split"]),
        lm="results/{lang}/text/lm.words.arpa",
        lexicon="results/{lang}/text/lexicon_filtered.lst",
    output:
        "results/{lang}/selftrain/hmm/word_tune/tuning.tsv",
    params:
        features=lambda w: selftrain_features(w.lang, config["selftrain"]["tune_split"]),
        lm_weights=config["selftrain"]["hmm_word_lm_weights"],
    log:
        "logs/{lang}/hmm_word_tune.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu hmm-word-tune --model {input.model:q} --features {params.features:q}"
        " --lm {input.lm:q} --lexicon {input.lexicon:q} --labels {input.labels:q}"
        " --lm-weights {params.lm_weights} --out-tsv {output:q} > {log:q} 2>&1"


rule hmm_word_decode:
    input:
        model="results/{lang}/selftrain/hmm/model.pkl",
        tuning="results/{lang}/selftrain/hmm/word_tune/tuning.tsv",
        features=lambda w: selftrain_features(w.lang, w.split) + ".npy",
        lm="results/{lang}/text/lm.words.arpa",
        lexicon="results/{lang}/text/lexicon_filtered.lst",
    output:
        "results/{lang}/transcripts/hmm_words/{split}.txt",
    params:
        features=lambda w: selftrain_features(w.lang, w.split),
    log:
        "logs/{lang}/hmm_word_decode/{split}.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu hmm-word-decode --model {input.model:q} --tuning {input.tuning:q}"
        " --features {params.features:q} --lm {input.lm:q} --lexicon {input.lexicon:q}"
        " --out {output:q} > {log:q} 2>&1"


# CTC self-training rounds (reference §4.2): with a real backbone configured, each round fine-tunes
# it on the audio (a GPU rule); with MFCC, a small transformer learns on the same features. Round 1
# learns from the HMM's train transcripts (or the pseudo-labels: `selftrain.ctc_from`); each
# round transcribes every split and is kept only when the unsupervised score improves; the next
# round learns from the best kept round's labels.
rule ctc_labels:
    input:
        decision=lambda w: f"{ctc_round_dir(w.lang, int(w.ctc_round) - 1)}/round.json",
        transcripts=lambda w: [f"{ctc_round_dir(w.lang, r)}/transcripts/{TRAIN}.txt"
                               for r in range(1, int(w.ctc_round))],
        fallback=lambda w: transcript(w.lang, "hmm", TRAIN),
    output:
        "results/{lang}/selftrain/ctc/iter{ctc_round}/labels.txt",
    params:
        rounds_dir=lambda w: f"results/{w.lang}/selftrain/ctc",
    log:
        "logs/{lang}/ctc_labels/iter{ctc_round}.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu ctc-best --decision {input.decision:q} --rounds-dir {params.rounds_dir:q}"
        f" --split {TRAIN} --fallback {{input.fallback:q}} --out {{output:q}} > {{log:q}} 2>&1"


rule ctc_train:
    input:
        unpack(lambda w: ctc_inputs(w.lang, TRAIN)),
        labels=lambda w: ctc_labels(w.lang, int(w.ctc_round)),
        dictionary="results/{lang}/text/phones/dict.phn.txt",
    output:
        "results/{lang}/selftrain/ctc/iter{ctc_round}/model.pt",
    params:
        source=lambda w: ctc_source_args(w.lang, TRAIN),
        init=ctc_option("init"),
        lr=ctc_option("lr"),
        batch_seconds=ctc_option("batch_seconds"),
        max_updates=ctc_option("max_updates"),
        max_epochs=ctc_option("max_epochs"),
        bf16=ctc_option("bf16"),
        out_dir=subpath(output[0], parent=True),
        # a new seed per round: a round that starts again from rejected labels must not repeat
        seed=lambda w: config["selftrain"]["seed"] + int(w.ctc_round) - 1,
        device=config["selftrain"]["device"],
        threads=config["threads"],
    threads: config["threads"]
    resources:
        gpu=1 if config["selftrain"]["gpu"] else 0,
    log:
        "logs/{lang}/ctc_train/iter{ctc_round}.log",
    benchmark:
        "benchmarks/{lang}/ctc_train/iter{ctc_round}.tsv"
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu ctc-train {params.source} --labels {input.labels:q}"
        " --dictionary {input.dictionary:q} --out-dir {params.out_dir:q} {params.init}"
        " {params.lr} {params.batch_seconds} {params.max_updates} {params.max_epochs} {params.bf16}"
        " --seed {params.seed} --device {params.device} --threads {params.threads} > {log:q} 2>&1"


rule ctc_transcribe:
    input:
        unpack(lambda w: ctc_inputs(w.lang, w.split)),
        model="results/{lang}/selftrain/ctc/iter{ctc_round}/model.pt",
        dictionary="results/{lang}/text/phones/dict.phn.txt",
        graph=lambda w: ([f"results/{w.lang}/text/fst/phn_to_phn_sil/HLG.fst"]
                         if config["selftrain"]["ctc_lm_decode"] else []),
    output:
        "results/{lang}/selftrain/ctc/iter{ctc_round}/transcripts/{split}.txt",
    params:
        source=lambda w: ctc_source_args(w.lang, w.split),
        graph=lambda w, input: f"--graph-dir {Path(input.graph[0]).parent}" if input.graph else "",
        device=config["selftrain"]["device"],
        threads=config["threads"],
    threads: config["threads"]
    resources:
        gpu=1 if config["selftrain"]["gpu"] and CTC_FINETUNE else 0,
    log:
        "logs/{lang}/ctc_transcribe/iter{ctc_round}/{split}.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu ctc-transcribe --model {input.model:q} {params.source}"
        " --dictionary {input.dictionary:q} {params.graph} --out {output:q} --device {params.device}"
        " --threads {params.threads} > {log:q} 2>&1"


# Every candidate is scored as the reference scores its HMM stages (§4.1 step 4): ln(phone-LM
# perplexity) x error rate against the GAN's pseudo-labels, on the tune split (the reference's
# valid), which no candidate trained on. "Round 0" is the HMM's output, so a CTC round is kept
# only when it beats the HMM and every kept round before it.
rule ctc_judge:
    input:
        unpack(ctc_judge_inputs),
        labels=lambda w: selftrain_labels(w.lang, config["selftrain"]["tune_split"]),
        lm=lambda w: phone_lm(w.lang, config["text"]["selection_phone_lm_order"]),
    output:
        "results/{lang}/selftrain/ctc/iter{judged_round}/round.json",
    params:
        previous=lambda w, input: shlex.join(["--previous", *input.previous]) if input.previous else "",
    log:
        "logs/{lang}/ctc_judge/iter{judged_round}.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu ctc-judge --round {wildcards.judged_round} --labels {input.labels:q}"
        " --transcripts {input.transcripts:q} --lm {input.lm:q} {params.previous}"
        " --out {output:q} > {log:q} 2>&1"


# The final self-trained transcripts: the best kept round's (the HMM's when no round was kept).
rule ctc_best:
    input:
        decision=lambda w: f"{ctc_round_dir(w.lang, CTC_ROUNDS)}/round.json",
        transcripts=lambda w: [f"{ctc_round_dir(w.lang, r)}/transcripts/{w.split}.txt"
                               for r in range(1, CTC_ROUNDS + 1)],
        fallback="results/{lang}/transcripts/hmm/{split}.txt",
    output:
        "results/{lang}/transcripts/selftrained/{split}.txt",
    params:
        rounds_dir=lambda w: f"results/{w.lang}/selftrain/ctc",
    log:
        "logs/{lang}/ctc_best/{split}.log",
    conda:
        "../../envs/kaldi.yaml"
    shell:
        "python -m w2vu ctc-best --decision {input.decision:q} --rounds-dir {params.rounds_dir:q}"
        " --split {wildcards.split} --fallback {input.fallback:q} --out {output:q} > {log:q} 2>&1"
