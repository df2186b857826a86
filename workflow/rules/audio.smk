# Audio stages: demo and digits corpora, inventory, convert, vad, trim (per split and shard),
# manifest, labels, summary. Each shard of each step is one job; `audio.shards` sets how many.


rule demo_corpus:
    output:
        audio=directory("results/{lang}/corpus/wav"),
        table="results/{lang}/corpus/audio.tsv",
        text="results/{lang}/corpus/text.txt",
    params:
        minutes=lookup(dpath="languages/{lang}/demo/minutes", within=config),
        seed=lookup(dpath="languages/{lang}/demo/seed", within=config),
        language=lookup(dpath="languages/{lang}/espeak", within=config),
    log:
        "logs/{lang}/demo_corpus.log",
    benchmark:
        "benchmarks/{lang}/demo_corpus.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu demo-corpus --out-dir {output.audio:q} --out-table {output.table:q}"
        " --out-text {output.text:q} --minutes {params.minutes} --seed {params.seed}"
        " --language {params.language:q} > {log:q} 2>&1"


rule digits_corpus:
    input:
        fsdd=lambda w: os.path.join(language(w.lang)["digits"]["fsdd"], "transcripts.tsv"),
    output:
        audio=directory("results/{lang}/digits/wav"),
        table="results/{lang}/digits/audio.tsv",
        text="results/{lang}/digits/text.txt",
    params:
        fsdd=subpath(input.fsdd, parent=True),
        seed=lookup(dpath="languages/{lang}/digits/seed", within=config),
        test_speakers=lookup(dpath="languages/{lang}/digits/test_speakers", within=config),
        valid_fraction=lookup(dpath="languages/{lang}/digits/valid_fraction", within=config),
        min_digits=lookup(dpath="languages/{lang}/digits/min_digits", within=config),
        max_digits=lookup(dpath="languages/{lang}/digits/max_digits", within=config),
        text_lines=lookup(dpath="languages/{lang}/digits/text_lines", within=config),
        grammar=lookup(dpath="languages/{lang}/digits/grammar", within=config),
        successor=lookup(dpath="languages/{lang}/digits/successor", within=config),
        passes=lookup(dpath="languages/{lang}/digits/passes", within=config),
        language=lookup(dpath="languages/{lang}/espeak", within=config),
    log:
        "logs/{lang}/digits_corpus.log",
    benchmark:
        "benchmarks/{lang}/digits_corpus.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu digits-corpus --fsdd {params.fsdd:q} --out-dir {output.audio:q}"
        " --out-table {output.table:q} --out-text {output.text:q} --seed {params.seed}"
        " --test-speakers {params.test_speakers:q} --valid-fraction {params.valid_fraction}"
        " --min-digits {params.min_digits} --max-digits {params.max_digits}"
        " --text-lines {params.text_lines} --grammar {params.grammar}"
        " --successor {params.successor} --passes {params.passes}"
        " --language {params.language:q} > {log:q} 2>&1"


rule inventory:
    input:
        unpack(inventory_inputs),
    output:
        lists=expand("results/{{lang}}/audio/inventory/{shard}.tsv", shard=SHARDS),
        rejects="results/{lang}/audio/inventory/rejects.tsv",
    params:
        table=lambda w: inventory_option(w, "table"),
        paths=lambda w: inventory_option(w, "paths"),
        references=lambda w: inventory_option(w, "references"),
        split_method=lookup(dpath="languages/{lang}/splits/method", within=config),
        split_fractions=lambda w: inventory_option(w, "split_fractions"),
        split_lists=lambda w: inventory_option(w, "split_lists"),
        split_names=lambda w: inventory_option(w, "split_names"),
        extensions=config["audio"]["extensions"],
        shards=len(SHARDS),
        fingerprint=source_fingerprint,
        out_dir=subpath(output.rejects, parent=True),
    log:
        "logs/{lang}/inventory.log",
    benchmark:
        "benchmarks/{lang}/inventory.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu inventory {params.table} {params.paths} {params.references}"
        " --split-method {params.split_method} {params.split_fractions} {params.split_lists}"
        " {params.split_names} --extensions {params.extensions:q}"
        " --shards {params.shards} --out-dir {params.out_dir:q} --out-rejects {output.rejects:q}"
        " > {log:q} 2>&1"


rule convert:
    input:
        lst="results/{lang}/audio/inventory/{shard}.tsv",
    output:
        audio=directory("results/{lang}/audio/converted/{split}/{shard}"),
        manifest="results/{lang}/audio/converted/{split}/{shard}.tsv",
        rejects="results/{lang}/audio/converted/{split}/{shard}.rejects.tsv",
    params:
        min_seconds=config["audio"]["min_seconds"],
        max_seconds=config["audio"]["max_seconds"],
    threads: 1
    log:
        "logs/{lang}/convert/{split}/{shard}.log",
    benchmark:
        "benchmarks/{lang}/convert/{split}/{shard}.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu convert --shard-list {input.lst:q} --split {wildcards.split}"
        " --out-dir {output.audio:q} --out-manifest {output.manifest:q}"
        " --out-rejects {output.rejects:q} --min-seconds {params.min_seconds}"
        " --max-seconds {params.max_seconds} --workers {threads} > {log:q} 2>&1"


rule vad:
    input:
        audio="results/{lang}/audio/converted/{split}/{shard}",
        manifest="results/{lang}/audio/converted/{split}/{shard}.tsv",
    output:
        vads="results/{lang}/audio/vad/{split}/{shard}.vads",
    params:
        window=config["audio"]["vad"]["window"],
        shift=config["audio"]["vad"]["shift"],
        n_fft=config["audio"]["vad"]["n_fft"],
        sft_threshold=config["audio"]["vad"]["sft_threshold"],
        vad_threshold=config["audio"]["vad"]["vad_threshold"],
    threads: 1
    log:
        "logs/{lang}/vad/{split}/{shard}.log",
    benchmark:
        "benchmarks/{lang}/vad/{split}/{shard}.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu vad --manifest {input.manifest:q} --out-vads {output.vads:q}"
        " --window {params.window} --shift {params.shift} --n-fft {params.n_fft}"
        " --sft-threshold {params.sft_threshold} --vad-threshold {params.vad_threshold}"
        " --workers {threads} > {log:q} 2>&1"


rule trim:
    input:
        lst="results/{lang}/audio/inventory/{shard}.tsv",
        audio="results/{lang}/audio/converted/{split}/{shard}",
        manifest="results/{lang}/audio/converted/{split}/{shard}.tsv",
        vads="results/{lang}/audio/vad/{split}/{shard}.vads",
    output:
        audio=directory("results/{lang}/audio/trimmed/{split}/{shard}"),
        manifest="results/{lang}/audio/trimmed/{split}/{shard}.tsv",
        rejects="results/{lang}/audio/trimmed/{split}/{shard}.rejects.tsv",
    params:
        pad_seconds=config["audio"]["trim"]["pad_seconds"],
        no_speech=config["audio"]["trim"]["no_speech"],
        min_seconds=config["audio"]["trim"]["min_seconds"],
    threads: 1
    log:
        "logs/{lang}/trim/{split}/{shard}.log",
    benchmark:
        "benchmarks/{lang}/trim/{split}/{shard}.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu trim --shard-list {input.lst:q} --split {wildcards.split}"
        " --manifest {input.manifest:q} --vads {input.vads:q} --out-dir {output.audio:q}"
        " --out-manifest {output.manifest:q} --out-rejects {output.rejects:q}"
        " --pad-seconds {params.pad_seconds} --no-speech {params.no_speech}"
        " --min-seconds {params.min_seconds} --workers {threads} > {log:q} 2>&1"


rule manifest:
    input:
        trimmed=lambda w: shard_files("results/{lang}/audio/trimmed/{split}/{shard}.tsv", w.lang, w.split),
    output:
        manifest="results/{lang}/manifest/{split}.tsv",
    params:
        split_root="results/{lang}/audio/trimmed/{split}",
    log:
        "logs/{lang}/manifest/{split}.log",
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu manifest --trimmed {input.trimmed:q} --split-root {params.split_root:q}"
        " --out {output.manifest:q} > {log:q} 2>&1"


rule labels:
    input:
        manifest="results/{lang}/manifest/{split}.tsv",
        lists=lambda w: expand("results/{lang}/audio/inventory/{shard}.tsv", lang=w.lang, shard=SHARDS),
    output:
        multiext("results/{lang}/manifest/{split}", ".wrd", ".ltr", ".given.phn"),
    params:
        out_prefix=subpath(input.manifest, strip_suffix=".tsv"),
    log:
        "logs/{lang}/labels/{split}.log",
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu labels --manifest {input.manifest:q} --shard-lists {input.lists:q}"
        " --split {wildcards.split} --out-prefix {params.out_prefix:q} > {log:q} 2>&1"


rule audio_summary:
    input:
        inventory_rejects="results/{lang}/audio/inventory/rejects.tsv",
        lists=expand("results/{{lang}}/audio/inventory/{shard}.tsv", shard=SHARDS),
        converted=lambda w: language_shard_files("results/{lang}/audio/converted/{split}/{shard}.tsv", w.lang),
        convert_rejects=lambda w: language_shard_files("results/{lang}/audio/converted/{split}/{shard}.rejects.tsv", w.lang),
        trimmed=lambda w: language_shard_files("results/{lang}/audio/trimmed/{split}/{shard}.tsv", w.lang),
        trim_rejects=lambda w: language_shard_files("results/{lang}/audio/trimmed/{split}/{shard}.rejects.tsv", w.lang),
        manifests=lambda w: expand("results/{lang}/manifest/{split}.tsv", lang=w.lang, split=split_names(w.lang)),
    output:
        summary="results/{lang}/audio/summary.tsv",
        rejects="results/{lang}/audio/rejects.tsv",
    log:
        "logs/{lang}/audio_summary.log",
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu audio-summary --inventory-rejects {input.inventory_rejects:q}"
        " --shard-lists {input.lists:q} --converted {input.converted:q}"
        " --convert-rejects {input.convert_rejects:q} --trimmed {input.trimmed:q}"
        " --trim-rejects {input.trim_rejects:q} --out-rejects {output.rejects:q}"
        " --out-summary {output.summary:q} > {log:q} 2>&1"
