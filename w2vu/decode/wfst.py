"""WFST decoding of GAN generator emissions over an HLG graph (reference §3.2, KALDI decoder).

The reference decodes with PyKaldi's FasterDecoder on the HLG of `kaldi_initializer.py`; w2vu uses
kaldi-decoder's FasterDecoder + DecodableCtc on the graphs of `w2vu.text.graphs` (a folder holding
`HLG.fst`, `tokens.txt` and `words.txt`). Emissions are the frame log-softmax that
`w2vu.gan.generate` writes as `{split}.emissions.npy/.lengths`; column j is fairseq dictionary
index j and graph input label j + 1 (`tokens.txt`), which is how DecodableCtc reads them.

Per frame, before the search:

* **blank weight** (the reference's `blank_weight`, default 0 = unchanged), on the blank column:
  `<s>`, or `<SIL>` with `sil_is_blank`. The reference changes the generator's *logits* and then
  takes the log-softmax. `blank_mode="add"` adds the weight to the column and renormalises, which
  is exactly the reference's "add" (log-softmax is blind to a per-frame constant). The emissions
  file holds log-probs, not logits, so `blank_mode="set"` sets the column of the *normalised*
  log-probs to the weight, then renormalises: the reference's "set" on logits whose per-frame
  log-sum-exp is 0. Both renormalise, so a frame stays a distribution. The reference's default
  mode is "set", w2vu's "add" (the two agree at the default weight 0, which changes nothing).
* **acoustic scale** (default 0.5, as the reference's DecodableMatrixScaled): the log-probs are
  multiplied by it; a smaller scale gives the LM more say.

`sil_is_blank` needs a `*_sil` graph (built with `silence="<SIL>"`), in which `<SIL>` frames are
absorbed like blanks; without one it is refused, since `<SIL>` would then end every path.

Output: one line per emission utterance (words of `words.txt`, space-separated), an empty line
for an utterance with no frames or no surviving path, so the file stays line-aligned with the
manifest.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.dictionary import SIL, SPECIALS
from w2vu.io.features import Features, open_features
from w2vu.io.lines import write_token_lines
from w2vu.kaldi_stack import kaldi_decoder, kaldifst
from w2vu.logs import progress

log = logging.getLogger(__name__)

BLANK = SPECIALS[0]  # "<s>", the CTC blank of the reference's H
BLANK_MODES = ("add", "set")
GRAPH_FILES = ("HLG.fst", "tokens.txt", "words.txt")


@dataclass(frozen=True)
class DecodeOptions:
    """Decoding settings; the defaults are the reference's KALDI decoder defaults."""

    acoustic_scale: float = 0.5
    blank_weight: float = 0.0
    blank_mode: str = "add"
    sil_is_blank: bool = False
    beam: float = 5.0
    max_active: int = 10000
    min_active: int = 20
    beam_delta: float = 0.5
    hash_ratio: float = 2.0

    def __post_init__(self) -> None:
        if self.blank_mode not in BLANK_MODES:
            raise W2vuError(f"blank_mode must be one of {BLANK_MODES}, got {self.blank_mode!r}")
        if not self.acoustic_scale > 0:
            raise W2vuError(f"acoustic_scale must be > 0, got {self.acoustic_scale}")
        if not self.beam > 0 or self.max_active < 1:
            raise W2vuError(f"beam must be > 0 and max_active >= 1, got {self.beam}, "
                            f"{self.max_active}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> DecodeOptions:
        """The options among `values` (other keys, such as scores, are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass
class Graph:
    """A loaded HLG with its tables: `tokens[i]` is input label i, `words[o]` output label o."""

    path: Path
    fst: object
    tokens: list[str]
    words: dict[int, str]

    @property
    def vocab_size(self) -> int:
        """Emission columns the graph expects: the tokens without `<eps>` and `#k`."""
        return sum(1 for t in self.tokens[1:] if not t.startswith("#"))

    def column(self, symbol: str) -> int | None:
        """Emission column of a dictionary symbol (input label - 1), None if absent."""
        try:
            return self.tokens.index(symbol) - 1
        except ValueError:
            return None


def _read_table(path: Path) -> dict[int, str]:
    """An OpenFst text symbol table: `symbol<whitespace>id` lines."""
    table: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise W2vuError(f"{path}:{number}: expected 'symbol id', got {line!r}; rebuild the "
                            "graphs (stage graphs)")
        table[int(parts[1])] = parts[0]
    return table


def load_graph(graph_dir: str | os.PathLike) -> Graph:
    """Read `HLG.fst`, `tokens.txt` and `words.txt` of a graph folder (w2vu.text.graphs layout)."""
    graph_dir = Path(graph_dir)
    missing = [name for name in GRAPH_FILES if not (graph_dir / name).is_file()]
    if missing:
        raise W2vuError(f"{graph_dir}: missing {', '.join(missing)}; build the decoding graphs "
                        "first (stage graphs, w2vu.text.graphs.build_graphs) or fix the path")
    token_table = _read_table(graph_dir / "tokens.txt")
    if sorted(token_table) != list(range(len(token_table))) or token_table.get(0) != "<eps>":
        raise W2vuError(f"{graph_dir / 'tokens.txt'}: labels are not <eps>=0, 1, 2, ...; rebuild "
                        "the graphs (stage graphs)")
    fst = kaldifst.StdVectorFst.read(str(graph_dir / "HLG.fst"))
    if fst is None or fst.start < 0:
        raise W2vuError(f"{graph_dir / 'HLG.fst'}: not a readable (or an empty) OpenFst graph; "
                        "delete it and rebuild the graphs (stage graphs)")
    tokens = [token_table[i] for i in range(len(token_table))]
    return Graph(graph_dir, fst, tokens, _read_table(graph_dir / "words.txt"))


def check_compatible(graph: Graph, features: Features, emissions_prefix: str | os.PathLike,
                     options: DecodeOptions) -> None:
    """Emissions and graph must agree on the dictionary; `sil_is_blank` needs a `*_sil` graph."""
    if features.num_frames and features.dim != graph.vocab_size:
        raise W2vuError(
            f"{emissions_prefix}.npy has {features.dim} columns but {graph.path / 'tokens.txt'} "
            f"lists {graph.vocab_size} dictionary symbols: the graph was built from another "
            "dict.phn.txt than the GAN's; rebuild the graphs from the training dictionary")
    if options.sil_is_blank:
        sil = graph.column(SIL)
        if sil is None or not _start_reads(graph, sil + 1):
            raise W2vuError(f"{graph.path / 'HLG.fst'}: the graph does not absorb {SIL} frames, "
                            f"so {SIL} cannot be the blank; decode with a *_sil graph (built "
                            "with silence=<SIL>) or turn sil_is_blank off")


def _start_reads(graph: Graph, label: int) -> bool:
    """Whether an arc leaving the start state reads `label` (true for blanks of H's root)."""
    arcs = kaldifst.ArcIterator(graph.fst, graph.fst.start)
    return any(arc.ilabel == label for arc in arcs)


def blank_column(graph: Graph, options: DecodeOptions) -> int:
    """Emission column the blank weight applies to: `<s>` (0), or `<SIL>` with sil_is_blank."""
    if options.sil_is_blank:
        column = graph.column(SIL)
        assert column is not None  # check_compatible has refused such graphs
        return column
    return 0


def scaled_emissions(logprobs: np.ndarray, blank: int, options: DecodeOptions) -> np.ndarray:
    """The matrix DecodableCtc reads: blank weight applied, renormalised, acoustic-scaled."""
    x = np.array(logprobs, dtype=np.float32)
    if options.blank_weight != 0:  # the reference touches the column only for a non-zero weight
        if options.blank_mode == "add":
            x[:, blank] += options.blank_weight
        else:
            x[:, blank] = options.blank_weight
        top = x.max(axis=1, keepdims=True)
        x -= top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))
    x *= options.acoustic_scale
    return x


def make_decoder(graph: Graph, options: DecodeOptions) -> object:
    """A FasterDecoder over the graph with the options' beam settings."""
    opts = kaldi_decoder.FasterDecoderOptions(
        beam=options.beam, max_active=options.max_active, min_active=options.min_active,
        beam_delta=options.beam_delta, hash_ratio=options.hash_ratio)
    return kaldi_decoder.FasterDecoder(graph.fst, opts)


def decode_matrix(decoder: object, graph: Graph, logprobs: np.ndarray, blank: int,
                  options: DecodeOptions) -> list[str] | None:
    """Best word sequence for one utterance's log-probs; None when no path survived."""
    if len(logprobs) == 0:
        return []
    decoder.decode(kaldi_decoder.DecodableCtc(scaled_emissions(logprobs, blank, options)))
    found, best = decoder.get_best_path()
    if not found:
        return None
    linear, _, olabels, _ = kaldifst.get_linear_symbol_sequence(best)
    if not linear:
        return None
    return [graph.words[label] for label in olabels]


def decode_features(graph: Graph, features: Features, options: DecodeOptions,
                    indices: Sequence[int] | None = None,
                    what: str = "wfst decode") -> list[list[str]]:
    """Decode utterances `indices` (all by default) of loaded emissions, in order.

    Utterances with no surviving path get an empty hypothesis and a warning.
    """
    indices = range(len(features)) if indices is None else indices
    decoder = make_decoder(graph, options)
    blank = blank_column(graph, options)
    out: list[list[str]] = []
    failed = 0
    for index in progress(indices, len(indices), what):
        words = decode_matrix(decoder, graph, features[index], blank, options)
        if words is None:
            failed += 1
            words = []
        out.append(words)
    if failed:
        log.warning("%s: %d of %d utterances had no surviving path (empty lines); widen the "
                    "beam", what, failed, len(indices))
    return out


# One graph per worker process, loaded by the pool's initializer.
_WORKER: dict[str, object] = {}


def _init_worker(graph_dir: str, emissions_prefix: str) -> None:
    _WORKER["graph"] = load_graph(graph_dir)
    _WORKER["features"] = open_features(emissions_prefix)


def _decode_chunk(args: tuple[Sequence[int], DecodeOptions]) -> list[list[str]]:
    indices, options = args
    logging.getLogger("w2vu").setLevel(logging.WARNING)  # the parent reports progress
    return decode_features(_WORKER["graph"], _WORKER["features"], options, indices)


def decode_emissions(graph: Graph, features: Features, options: DecodeOptions,
                     threads: int = 1) -> list[list[str]]:
    """Decode every utterance, in `threads` processes when > 1 (each loads the graph once)."""
    count = len(features)
    start = time.perf_counter()
    if threads <= 1 or count < 2 * threads:
        hyps = decode_features(graph, features, options)
    else:
        per = math.ceil(count / (threads * 4))
        chunks = [(range(i, min(i + per, count)), options) for i in range(0, count, per)]
        with ProcessPoolExecutor(threads, initializer=_init_worker,
                                 initargs=(str(graph.path), features.prefix)) as pool:
            hyps = [h for part in progress(pool.map(_decode_chunk, chunks), len(chunks),
                                           f"wfst decode ({threads} processes, chunks)")
                    for h in part]
    seconds = time.perf_counter() - start
    log.info("decoded %d utterances, %d frames in %.1f s (%.0f frames/s) with %s", count,
             features.num_frames, seconds, features.num_frames / max(seconds, 1e-9), options)
    return hyps


def decode_split(emissions_prefix: str | os.PathLike, graph_dir: str | os.PathLike,
                 out_txt: str | os.PathLike, options: DecodeOptions | None = None,
                 threads: int = 1) -> list[list[str]]:
    """Decode `{emissions_prefix}.npy/.lengths` over `graph_dir`'s HLG and write `out_txt`.

    Why: LM (WFST) decoding turns the GAN's frame posteriors into words (or LM-smoothed phones
    with a phone graph), the reference's KALDI decoder. One line per emission utterance.
    """
    options = options or DecodeOptions()
    features = open_features(emissions_prefix)
    graph = load_graph(graph_dir)
    check_compatible(graph, features, emissions_prefix, options)
    hyps = decode_emissions(graph, features, options, threads)
    write_token_lines(out_txt, hyps)
    return hyps
