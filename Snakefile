# w2vu: wav2vec-U from raw speech and unpaired text to a speech recognizer.
# Run `snakemake --cores 2` for the embedded demo; config/README.md explains every key.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/audio.smk"


rule all:
    input:
        all_targets(),
    default_target: True
