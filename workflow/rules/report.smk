# Report figures for `snakemake --report report.html`: one rule per figure, per language. Which
# figures a config makes is decided by report_targets() in common/report.smk (no cluster usage without
# the wav2vec-U 1.0 inputs, no error rates without references and scores, generated phones only
# where the workflow makes transcripts). Figures are cheap: they run on the local machine.


localrules:
    report_speech_ratio,
    report_utterance_lengths,
    report_cluster_usage,
    report_phone_frequencies,
    report_gan_training,
    report_error_rates,


rule report_speech_ratio:
    input:
        summary="results/{lang}/audio/summary.tsv",
        vads=lambda w: language_shard_files("results/{lang}/audio/vad/{split}/{shard}.vads", w.lang),
        manifests=lambda w: language_shard_files(
            "results/{lang}/audio/converted/{split}/{shard}.tsv", w.lang
        ),
    output:
        svg=report(
            "results/{lang}/report/speech_ratio.svg",
            caption="../report/speech_ratio.rst",
            category="Audio",
            subcategory="{lang}",
            labels={"figure": "speech kept by VAD"},
        ),
    log:
        "logs/{lang}/report/speech_ratio.log",
    benchmark:
        "benchmarks/{lang}/report/speech_ratio.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu report speech-ratio --summary {input.summary:q} --vads {input.vads:q}"
        " --manifests {input.manifests:q} --out {output.svg:q} > {log:q} 2>&1"


rule report_utterance_lengths:
    input:
        manifests=lambda w: expand("results/{lang}/manifest/{split}.tsv", lang=w.lang,
                                   split=split_names(w.lang)),
    output:
        svg=report(
            "results/{lang}/report/utterance_lengths.svg",
            caption="../report/utterance_lengths.rst",
            category="Audio",
            subcategory="{lang}",
            labels={"figure": "utterance lengths"},
        ),
    log:
        "logs/{lang}/report/utterance_lengths.log",
    benchmark:
        "benchmarks/{lang}/report/utterance_lengths.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu report utterance-lengths --manifests {input.manifests:q}"
        " --out {output.svg:q} > {log:q} 2>&1"


rule report_cluster_usage:
    input:
        src=cluster_unit_files,
    output:
        svg=report(
            "results/{lang}/report/cluster_usage.svg",
            caption="../report/cluster_usage.rst",
            category="Features",
            subcategory="{lang}",
            labels={"figure": "k-means cluster usage"},
        ),
    params:
        clusters=config["features"]["clusters"],
    log:
        "logs/{lang}/report/cluster_usage.log",
    benchmark:
        "benchmarks/{lang}/report/cluster_usage.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu report cluster-usage --src {input.src:q} --clusters {params.clusters}"
        " --out {output.svg:q} > {log:q} 2>&1"


rule report_phone_frequencies:
    input:
        text="results/{lang}/text/phones/lm.phones.filtered.txt",
        generated=generated_transcripts,
    output:
        svg=report(
            "results/{lang}/report/phone_frequencies.svg",
            caption="../report/phone_frequencies.rst",
            category="Phones",
            subcategory="{lang}",
            labels={"figure": "phone frequencies"},
        ),
    log:
        "logs/{lang}/report/phone_frequencies.log",
    benchmark:
        "benchmarks/{lang}/report/phone_frequencies.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu report phone-frequencies --text {input.text:q}"
        " --generated {input.generated:q} --out {output.svg:q} > {log:q} 2>&1"


rule report_gan_training:
    input:
        metrics=expand("results/{{lang}}/gan/{{gan_variant}}/{run}/metrics.tsv", run=GAN_RUNS),
    output:
        svg=report(
            "results/{lang}/report/gan_{gan_variant}.svg",
            caption="../report/gan_training.rst",
            category="GAN training",
            subcategory="{lang}",
            labels={"variant": "{gan_variant}"},
        ),
    params:
        title="GAN training, {lang}, {gan_variant}",
        keep=config["gan"]["keep"],
    log:
        "logs/{lang}/report/gan_{gan_variant}.log",
    benchmark:
        "benchmarks/{lang}/report/gan_{gan_variant}.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu report gan-training --metrics {input.metrics:q} --title {params.title:q}"
        " --keep {params.keep} --out {output.svg:q} > {log:q} 2>&1"


rule report_error_rates:
    input:
        scores="results/{lang}/scores.tsv",
    output:
        svg=report(
            "results/{lang}/report/error_rates.svg",
            caption="../report/error_rates.rst",
            category="Error rates",
            subcategory="{lang}",
            labels={"figure": "error rate per stage"},
        ),
    log:
        "logs/{lang}/report/error_rates.log",
    benchmark:
        "benchmarks/{lang}/report/error_rates.tsv"
    conda:
        "../../envs/audio.yaml"
    shell:
        "python -m w2vu report error-rates --scores {input.scores:q} --out {output.svg:q}"
        " > {log:q} 2>&1"
