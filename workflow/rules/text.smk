# Text stages: normalize -> lexicon -> phones (then LMs and graphs).


rule normalize:
    input:
        text=unpaired_text,
        lid_model=lid_model_input,
    output:
        text="results/{lang}/text/normalized.txt",
    params:
        casefold="--casefold" if config["text"]["casefold"] else "--no-casefold",
        max_line_chars=config["text"]["max_line_chars"],
        lid_model=lambda w: lid_option(w, "lid_model"),
        lid_label=lambda w: lid_option(w, "lid_label"),
        lid_threshold=lambda w: lid_option(w, "lid_threshold"),
    log:
        "logs/{lang}/normalize.log",
    benchmark:
        "benchmarks/{lang}/normalize.tsv"
    conda:
        "../../envs/text.yaml"
    shell:
        "python -m w2vu normalize --inputs {input.text:q} --out {output.text:q} {params.casefold}"
        " --max-line-chars {params.max_line_chars} {params.lid_model} {params.lid_label}"
        " {params.lid_threshold} > {log:q} 2>&1"


rule lexicon:
    input:
        text="results/{lang}/text/normalized.txt",
        user_lexicon=user_lexicon_input,
    output:
        words="results/{lang}/text/words.txt",
        lexicon="results/{lang}/text/lexicon.lst",
    params:
        language=lookup(dpath="languages/{lang}/espeak", within=config),
        min_word_count=config["text"]["min_word_count"],
        user_lexicon=lambda w: user_lexicon_option(w, "user_lexicon"),
        lexicon_mode=lambda w: user_lexicon_option(w, "lexicon_mode"),
        cache_dir="results/{lang}/text/cache",
    log:
        "logs/{lang}/lexicon.log",
    benchmark:
        "benchmarks/{lang}/lexicon.tsv"
    conda:
        "../../envs/text.yaml"
    shell:
        "python -m w2vu lexicon --text {input.text:q} --language {params.language:q}"
        " --out-words {output.words:q} --out-lexicon {output.lexicon:q}"
        " --min-word-count {params.min_word_count} {params.user_lexicon} {params.lexicon_mode}"
        " --cache-dir {params.cache_dir:q} > {log:q} 2>&1"


rule phones:
    input:
        text="results/{lang}/text/normalized.txt",
        lexicon="results/{lang}/text/lexicon.lst",
    output:
        dictionary="results/{lang}/text/phones/dict.phn.txt",
        lexicon="results/{lang}/text/lexicon_filtered.lst",
        phone_text="results/{lang}/text/phones/lm.phones.filtered.txt",
    params:
        min_phones=config["text"]["min_phones"],
        count_by=config["text"]["phone_count_by"],
        sil_prob=config["text"]["sil_prob"],
        seed=config["text"]["seed"],
    log:
        "logs/{lang}/phones.log",
    benchmark:
        "benchmarks/{lang}/phones.tsv"
    conda:
        "../../envs/text.yaml"
    shell:
        "python -m w2vu phones --text {input.text:q} --lexicon {input.lexicon:q}"
        " --out-dict {output.dictionary:q} --out-lexicon {output.lexicon:q}"
        " --out-phone-text {output.phone_text:q} --min-phones {params.min_phones}"
        " --count-by {params.count_by} --sil-prob {params.sil_prob} --seed {params.seed}"
        " > {log:q} 2>&1"


# The phone references every PER is scored against: the references' phones, checked against the
# inventory, or their words phonemised like the unpaired text.
rule reference_phones:
    input:
        words="results/{lang}/manifest/{split}.wrd",
        given="results/{lang}/manifest/{split}.given.phn",
        dictionary="results/{lang}/text/phones/dict.phn.txt",
        lexicon="results/{lang}/text/lexicon.lst",
        user_lexicon=user_lexicon_input,
    output:
        "results/{lang}/manifest/{split}.phn",
    params:
        language=lookup(dpath="languages/{lang}/espeak", within=config),
        user_lexicon=lambda w: user_lexicon_option(w, "user_lexicon"),
        lexicon_mode=lambda w: user_lexicon_option(w, "lexicon_mode"),
        casefold="--casefold" if config["text"]["casefold"] else "--no-casefold",
        cache_dir="results/{lang}/text/cache",
    log:
        "logs/{lang}/reference_phones/{split}.log",
    conda:
        "../../envs/text.yaml"
    shell:
        "python -m w2vu reference-phones --words {input.words:q} --given {input.given:q}"
        " --dictionary {input.dictionary:q} --lexicon {input.lexicon:q} --out {output:q}"
        " --language {params.language:q} {params.user_lexicon} {params.lexicon_mode} {params.casefold}"
        " --cache-dir {params.cache_dir:q} > {log:q} 2>&1"


rule phone_lm:
    input:
        text="results/{lang}/text/phones/lm.phones.filtered.txt",
    output:
        arpa="results/{lang}/text/phones/lm.phones.filtered.{order}.arpa",
    params:
        order=lambda w: int(w.order),
    log:
        "logs/{lang}/phone_lm/{order}.log",
    benchmark:
        "benchmarks/{lang}/phone_lm/{order}.tsv"
    conda:
        "../../envs/text.yaml"
    shell:
        "python -m w2vu phone-lm --text {input.text:q} --order {params.order} --out {output.arpa:q}"
        " > {log:q} 2>&1"


rule word_lm:
    input:
        text="results/{lang}/text/normalized.txt",
    output:
        arpa="results/{lang}/text/lm.words.arpa",
    params:
        order=config["text"]["word_lm_order"],
        prune=config["text"]["word_lm_prune"],
        lmplz=option("--lmplz", config["text"].get("lmplz")),
    log:
        "logs/{lang}/word_lm.log",
    benchmark:
        "benchmarks/{lang}/word_lm.tsv"
    conda:
        "../../envs/text.yaml"
    shell:
        "python -m w2vu word-lm --text {input.text:q} --order {params.order} --prune {params.prune}"
        " {params.lmplz} --out {output.arpa:q} > {log:q} 2>&1"


rule graphs:
    input:
        unpack(graph_inputs),
    output:
        multiext("results/{lang}/text/fst/{graph}/", "HLG.fst", "words.txt", "tokens.txt"),
    params:
        lexicon=graph_lexicon_args,
        silence=lambda w: "--silence '<SIL>'" if GRAPHS[w.graph]["silence"] else "",
        out_dir="results/{lang}/text/fst/{graph}",
    log:
        "logs/{lang}/graphs/{graph}.log",
    benchmark:
        "benchmarks/{lang}/graphs/{graph}.tsv"
    conda:
        "../../envs/text.yaml"
    shell:
        "python -m w2vu graphs --dictionary {input.dictionary:q} --arpa {input.arpa:q}"
        " {params.lexicon} {params.silence} --out-dir {params.out_dir:q} > {log:q} 2>&1"
