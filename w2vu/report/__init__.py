"""Figures for `snakemake --report`: one function per figure, each reading pipeline files."""
