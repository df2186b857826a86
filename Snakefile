# w2vu: wav2vec-U from raw speech and unpaired text to a speech recognizer.
# Run `snakemake --cores 2` for the embedded demo; config/README.md explains every key.
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


# The embedded demo config, unless the user gives their own with --configfile (Snakemake would
# otherwise merge the two, adding the demo language to every run). --config still edits it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/audio.smk"
include: "workflow/rules/text.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/gan.smk"
include: "workflow/rules/selftrain.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/model.smk"


rule all:
    input:
        all_targets(),
    default_target: True
