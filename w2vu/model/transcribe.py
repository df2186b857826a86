"""`w2vu transcribe`: new audio through a model folder, with the workflow's own steps.

Why this way: the output must be the pipeline's, byte for byte, so nothing is re-implemented.
Each batch of files becomes a one-shard split in a scratch folder and goes through the same
library steps as the rules (convert, vad, trim, manifest, extract, PCA/clusters/merge/pool, GAN
generation and WFST decoding, HMM decoding or CTC transcription) with the settings `model.json`
recorded. A file a step rejects gets an error row naming the reason; the rest go on.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from w2vu.audio import SAMPLE_RATE
from w2vu.audio.convert import DurationLimits, convert_shard
from w2vu.audio.gather import gather_split
from w2vu.audio.inventory import Entry, entries_from_table, find_audio_files, write_shard_lists
from w2vu.audio.trim import TrimParams, trim_shard
from w2vu.audio.vad import VadParams, vad_shard
from w2vu.decode.tune import read_choice
from w2vu.decode.wfst import decode_split
from w2vu.features.extract import BatchSettings, extract_shard
from w2vu.features.kmeans import assign_clusters
from w2vu.features.pca import apply_pca, pca_paths
from w2vu.features.pool import mean_pool_features, merge_clusters
from w2vu.gan.generate import generate
from w2vu.io.lines import read_token_lines
from w2vu.io.manifest import read_manifest
from w2vu.io.rejects import read_rejects
from w2vu.model import folder as layout
from w2vu.model.folder import ModelFolder
from w2vu.text.lexicon import read_lexicon, words_to_phones

log = logging.getLogger(__name__)
SPLIT = "input"


@dataclass(frozen=True)
class Transcript:
    """One input file's result: words and phones space-separated, or the reason it failed."""

    path: str
    words: str = ""
    phones: str = ""
    seconds: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class Options:
    device: str = "cpu"
    threads: int = 1
    batch_files: int = 100


def list_inputs(inputs: Sequence[str],
                extensions: Sequence[str]) -> tuple[list[str], list[Transcript]]:
    """Audio files named by `inputs` (files, folders scanned recursively for the model's audio
    extensions, or `.tsv` lists with a `path` column), in the order given, each once; and an error
    row for every name that is not there."""
    paths: list[str] = []
    missing: list[Transcript] = []
    for name in inputs:
        if os.path.isdir(name):
            paths += find_audio_files([name], extensions, Path.cwd())[0]
        elif name.endswith(".tsv") and os.path.isfile(name):
            paths += [e.path for e in entries_from_table(Path(name))]
        elif os.path.isfile(name):
            paths.append(os.path.abspath(name))
        else:
            missing.append(Transcript(name, error="file not found"))
    unique = list(dict.fromkeys(paths))
    bad = [p for p in unique if any(c in p for c in "\t\n\r")]
    missing += [Transcript(p, error="path contains a tab or line break; rename the file")
                for p in bad]
    return [p for p in unique if p not in bad], missing


def _backbones(model: ModelFolder, device: str) -> tuple[object, object | None]:
    """The feature extractor, and the unnormalised one that k-means assignment reads when the
    model was clustered that way (features.cluster_unnormalized)."""
    features = model.recipe["features"]
    path = model.backbone()
    if path is None:
        from w2vu.features.mfcc import MfccBackbone

        return MfccBackbone(stack=int(features["mfcc_stack"])), None
    from w2vu.features.backbone import load_backbone

    normalize = {"auto": None, "yes": True, "no": False}[features["normalize"]]
    precision = {"bf16": bool(features["bf16"]), "tf32": bool(features["tf32"])}
    main = load_backbone(path, int(features["layer"]), device, normalize=normalize, **precision)
    raw = (load_backbone(path, int(features["layer"]), device, normalize=False, **precision)
           if features["cluster_unnormalized"] and model.recipe["gan"]["variant"] == 1 else None)
    return main, raw


class Transcriber:
    """A model folder made ready to transcribe batches of files (backbones loaded once)."""

    def __init__(self, model: ModelFolder, options: Options) -> None:
        import torch

        torch.set_num_threads(options.threads)
        self.model = model
        self.options = options
        self.backbone, self.raw_backbone = _backbones(model, options.device)
        self._hmm = None  # the HMM with its HCLG, loaded at the first batch and kept
        self.lexicon = read_lexicon(model.path(layout.LEXICON))

    def run(self, paths: Sequence[str], work: Path) -> list[Transcript]:
        """Transcribe `paths` in the scratch folder `work`; one result per path, in order."""
        kept, seconds, rejected = self._audio(paths, work)
        if not kept:
            return [Transcript(p, seconds=seconds.get(p, 0.0), error=rejected[p]) for p in paths]
        manifest = work / "manifest.tsv"
        features = self.model.recipe["features"]
        settings = BatchSettings(batch_seconds=float(features["batch_seconds"]),
                                 max_chunk_seconds=float(features["max_chunk_seconds"]))
        extract_shard(manifest, 0, 1, self.backbone, str(work / "layer"), settings)
        if self.raw_backbone is not None:
            extract_shard(manifest, 0, 1, self.raw_backbone, str(work / "unnormalized"), settings)
        gan_phones, words = self._gan(work)
        system = self.model.system
        phones = (gan_phones if system == "gan" else words_to_phones(words, self.lexicon)
                  if system == "gan_words" else self._selftrained(work, manifest))
        by_key = dict(zip(kept, zip(words, phones)))
        out = []
        for index, path in enumerate(paths):
            if path in rejected:
                out.append(Transcript(path, seconds=seconds.get(path, 0.0), error=rejected[path]))
            else:
                w, p = by_key[f"{index:07d}"]
                out.append(Transcript(path, " ".join(w), " ".join(p), seconds[path]))
        return out

    def _audio(self, paths: Sequence[str], work: Path
               ) -> tuple[list[str], dict[str, float], dict[str, str]]:
        """convert, vad, trim and manifest, as the audio rules run them. Returns the keys of the
        manifest rows in order, each input's duration and the reason of every rejected input."""
        audio = self.model.recipe["audio"]
        entries = [Entry(key=f"{i:07d}", path=p, split=SPLIT) for i, p in enumerate(paths)]
        write_shard_lists(entries, 1, work / "inventory")
        shard_list = work / "inventory" / "000.tsv"
        workers = self.options.threads
        converted = work / "converted" / "000"
        convert_shard(shard_list, SPLIT, converted, f"{converted}.tsv",
                      f"{converted}.rejects.tsv",
                      DurationLimits(float(audio["min_seconds"]), float(audio["max_seconds"])),
                      workers=workers)
        vad = audio["vad"]
        vad_shard(f"{converted}.tsv", work / "000.vads",
                  VadParams(vad["window"], vad["shift"], vad["n_fft"], vad["sft_threshold"],
                            vad["vad_threshold"]), workers=workers)
        trim = audio["trim"]
        trimmed = work / "trimmed" / "000"
        trim_shard(shard_list, SPLIT, f"{converted}.tsv", work / "000.vads", trimmed,
                   f"{trimmed}.tsv", f"{trimmed}.rejects.tsv",
                   TrimParams(trim["pad_seconds"], trim["no_speech"], trim["min_seconds"]),
                   workers=workers)
        gather_split([f"{trimmed}.tsv"], work / "trimmed", work / "manifest.tsv")
        path_of = {e.key: e.path for e in entries}
        seconds = {path_of[rel.removesuffix(".flac")]: n / SAMPLE_RATE
                   for rel, n in read_manifest(f"{converted}.tsv").rows}
        rejected = {r.path: f"{r.stage}: {r.reason}"
                    for table in (f"{converted}.rejects.tsv", f"{trimmed}.rejects.tsv")
                    for r in read_rejects(table)}
        keys = [os.path.splitext(rel.split("/", 1)[1])[0]
                for rel, _ in read_manifest(work / "manifest.tsv").rows]
        return keys, seconds, rejected

    def _gan(self, work: Path) -> tuple[list[list[str]], list[list[str]]]:
        """The selected generator's phones and its emissions WFST-decoded into words."""
        model, recipe = self.model, self.model.recipe
        features = str(work / "layer")
        if recipe["gan"]["variant"] == 1:
            dim = model.pca_dim()
            self._pca(work)
            cluster_input = work / ("unnormalized" if self.raw_backbone is not None else "layer")
            assign_clusters(cluster_input, model.path(layout.CENTROIDS), work / "units.src",
                            backend=recipe["features"]["kmeans_backend"],
                            threads=self.options.threads)
            merge_clusters(work / f"pca{dim}", work / "units.src", work / "merged")
            mean_pool_features(work / "merged", work / "pooled")
            features = str(work / "pooled")
        stride = recipe["gan"]["decode_stride"]
        hyps = generate(model.path(layout.GAN), features, model.path(layout.DICTIONARY),
                        work / "gan", SPLIT, decode_stride=int(stride) if stride else None,
                        write_emissions=True, device=self.options.device)
        words = decode_split(work / "gan" / f"{SPLIT}.emissions", model.path(layout.WORD_GRAPH),
                             work / "words.txt", read_choice(model.path(layout.DECODE_CHOICE)),
                             self.options.threads)
        return hyps.phones, words

    def _pca(self, work: Path) -> Path:
        dim = self.model.pca_dim()
        out = work / f"pca{dim}"
        if not out.with_suffix(".npy").exists():
            apply_pca(work / "layer", pca_paths(self.model.path(layout.PCA_DIR), dim), out,
                      threads=self.options.threads)
        return out

    def _selftrained(self, work: Path, manifest: Path) -> list[list[str]]:
        """The HMM's or the CTC round's phones, decoded as the selftrain rules decode them."""
        model, recipe = self.model, self.model.recipe
        on_pca = recipe["selftrain"]["hmm_features"] == "pca"
        out = work / "phones.txt"
        if model.system == "hmm":
            from w2vu.selftrain.hmm.decode import HmmDecoder
            from w2vu.selftrain.hmm.tune import decode_chosen_weight

            if self._hmm is None:
                graph = model.path(layout.HMM_GRAPH)
                self._hmm = HmmDecoder(model.path(layout.HMM), model.path(layout.PHONE_LM),
                                       graph=graph if graph.is_file() else None)
            features = self._pca(work) if on_pca else work / "layer"
            decode_chosen_weight(self._hmm, model.path(layout.HMM_TUNING), features, out)
        else:
            from w2vu.selftrain.ctc.rounds import transcribe_round

            if recipe["selftrain"]["ctc_finetune"]:
                from w2vu.selftrain.ctc.finetune import ManifestAudio

                source: object = ManifestAudio(manifest)
            else:
                source = str(self._pca(work) if on_pca else work / "layer")
            graph = model.path(layout.PHONE_GRAPH) if recipe["selftrain"]["ctc_lm_decode"] else None
            transcribe_round(model.path(layout.CTC), source, model.path(layout.DICTIONARY), out,
                             graph, self.options.device, self.options.threads)
        return read_token_lines(out, "transcripts")


def transcribe(model: ModelFolder, inputs: Sequence[str], options: Options,
               progress: object | None = None) -> Iterator[Transcript]:
    """Yield one `Transcript` per input file, batch by batch: first a row for each name that does
    not exist, then the files in input order. `progress` (a tqdm bar) is advanced by the number
    of files of each finished batch."""
    paths, missing = list_inputs(inputs, model.recipe["audio"]["extensions"])
    yield from missing
    if progress is not None:
        progress.reset(total=len(paths))
    if not paths:
        return
    transcriber = Transcriber(model, options)
    size = max(1, options.batch_files)
    for start in range(0, len(paths), size):
        batch = paths[start: start + size]
        with tempfile.TemporaryDirectory(prefix="w2vu-transcribe-") as work:
            yield from transcriber.run(batch, Path(work))
        if progress is not None:
            progress.update(len(batch))
