"""fairseq feature files and unit-label files, streamed so that memory stays flat.

Features (reference layout, written by `npy_append_array` there too): `{prefix}.npy` is float32
[sum of T_i, D], all utterances concatenated in manifest order, and `{prefix}.lengths` holds one
T_i per line. An utterance with T_i = 0 is listed but adds no rows. A prefix is a path without
extension (`results/en/features/train`), so shard prefixes such as `train.3` work too.

Unit labels (`.src` from k-means assignment, `.km` for wav2vec-U 2.0): one line per utterance,
space-separated integer ids, an empty line for T_i = 0.

Writers append into temporary names and rename on success (a crash leaves no half file under the
final name); readers memory-map the `.npy`, so no step holds a whole split in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
from npy_append_array import NpyAppendArray

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_path

NPY = ".npy"
LENGTHS = ".lengths"
DTYPE = np.float32
DEFAULT_BLOCK_ROWS = 1 << 15  # rows read at once by block-wise steps (128 MiB at 1024-d)


def feature_paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """`({prefix}.npy, {prefix}.lengths)`; the prefix may contain dots (shard names)."""
    prefix = os.fspath(prefix)
    return Path(prefix + NPY), Path(prefix + LENGTHS)


def _rerun_hint(*paths: Path) -> str:
    names = " and ".join(str(p) for p in paths)
    return f"delete {names} and rerun the step that writes them"


class FeatureWriter:
    """Stream utterances into `{prefix}.npy` + `{prefix}.lengths`; both appear only on success.

    Use as a context manager. `dim` may be left out when the first appended array gives it; a
    split with no frames at all is written as a (0, dim) array so that readers still work.
    """

    def __init__(self, prefix: str | os.PathLike, dim: int | None = None) -> None:
        self.npy_path, self.lengths_path = feature_paths(prefix)
        self.dim = dim
        self.utterances = 0
        self.frames = 0
        self._stack: ExitStack | None = None
        self._npy_tmp: Path | None = None
        self._array: NpyAppendArray | None = None
        self._lengths_file = None

    def __enter__(self) -> FeatureWriter:
        with ExitStack() as stack:
            # Entered in this order, the .npy is renamed first and .lengths last on success.
            lengths_tmp = stack.enter_context(atomic_path(self.lengths_path))
            self._npy_tmp = stack.enter_context(atomic_path(self.npy_path, suffix=NPY))
            self._lengths_file = stack.enter_context(
                open(lengths_tmp, "w", encoding="ascii", newline="\n"))
            stack.callback(self._close_array)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        stack, self._stack = self._stack, None
        assert stack is not None, "FeatureWriter used outside its with-block"
        if exc_type is None:
            try:
                self._finish()
            except BaseException as err:  # noqa: BLE001 - handed to the stack, then re-raised
                if not stack.__exit__(type(err), err, err.__traceback__):
                    raise
                return False
        return bool(stack.__exit__(exc_type, exc, tb))

    def _close_array(self) -> None:
        if self._array is not None:
            self._array.close()
            self._array = None

    def _finish(self) -> None:
        self._close_array()
        if self.frames == 0:
            np.save(self._npy_tmp, np.zeros((0, self.dim or 0), dtype=DTYPE))

    def _check_dim(self, feats: np.ndarray) -> None:
        if feats.ndim != 2:
            raise ValueError(f"features must be 2-D [T, D], got shape {feats.shape}")
        if self.dim is None:
            self.dim = int(feats.shape[1])
        elif feats.shape[1] != self.dim:
            raise ValueError(f"{self.npy_path}: got {feats.shape[1]}-d features, "
                             f"expected {self.dim}-d")

    def _write_rows(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        if self._array is None:
            # The temporary file exists (mkstemp); NpyAppendArray writes its own header.
            self._array = NpyAppendArray(self._npy_tmp, delete_if_exists=True,
                                         rewrite_header_on_append=False)
        # C order always: a Fortran-ordered first array would make the file append on axis -1.
        self._array.append(np.ascontiguousarray(rows, dtype=DTYPE))
        self.frames += len(rows)

    def append(self, feats: np.ndarray) -> None:
        """Add one utterance's [T, D] frames (T may be 0)."""
        if self._stack is None:
            raise RuntimeError("FeatureWriter.append outside its with-block")
        feats = np.asarray(feats)
        self._check_dim(feats)
        self._write_rows(feats)
        self._lengths_file.write(f"{len(feats)}\n")
        self.utterances += 1

    def extend(self, rows: np.ndarray, lengths: Sequence[int] | np.ndarray) -> None:
        """Add several utterances at once: `rows` is their frames concatenated, [sum lengths, D]."""
        if self._stack is None:
            raise RuntimeError("FeatureWriter.extend outside its with-block")
        rows = np.asarray(rows)
        lengths = np.asarray(lengths, dtype=np.int64)
        self._check_dim(rows)
        if int(lengths.sum()) != len(rows) or (lengths < 0).any():
            raise ValueError(f"{len(rows)} rows do not split into lengths summing to "
                             f"{int(lengths.sum())}")
        self._write_rows(rows)
        if len(lengths):
            self._lengths_file.write("\n".join(map(str, lengths.tolist())) + "\n")
        self.utterances += len(lengths)


def write_features(prefix: str | os.PathLike, utterances: Iterable[np.ndarray],
                   dim: int | None = None) -> tuple[int, int]:
    """Write utterances (each [T, D]) atomically; return (utterances, frames)."""
    with FeatureWriter(prefix, dim) as writer:
        for feats in utterances:
            writer.append(feats)
    return writer.utterances, writer.frames


def read_lengths(path: str | os.PathLike) -> np.ndarray:
    """The T_i of a `.lengths` file as int64; malformed lines are a user error naming the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except FileNotFoundError:
        raise W2vuError(f"{path}: lengths file not found; rerun the step that writes the "
                        "features") from None
    except UnicodeDecodeError:
        raise W2vuError(f"{path}: not a lengths file (binary content); "
                        f"{_rerun_hint(path)}") from None
    try:
        lengths = np.array(lines, dtype=np.int64) if lines else np.zeros(0, dtype=np.int64)
    except ValueError:
        lengths = None
    if lengths is None or (lengths < 0).any():
        for number, line in enumerate(lines, start=1):
            if not line.strip().isdigit():
                raise W2vuError(f"{path}:{number}: expected a frame count >= 0, got {line!r}; "
                                f"{_rerun_hint(path)}")
    return lengths


class FrameSource(Protocol):
    """Utterances as arrays of frames [T_i, D]: a feature split, or audio read as 1-d frames
    (``w2vu.selftrain.ctc.finetune.ManifestAudio``); what batching and CTC training read."""

    @property
    def lengths(self) -> np.ndarray: ...

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Block:
    """Consecutive utterances `first .. first + len(lengths) - 1` and their rows (mapped)."""

    first: int
    lengths: np.ndarray
    data: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        """Row offset of each utterance inside `data`, plus the end: length len(lengths) + 1."""
        return np.concatenate(([0], np.cumsum(self.lengths)))


@dataclass(frozen=True)
class Features:
    """A memory-mapped split: `data` [N, D] float32, `lengths` [U], `offsets` [U + 1]."""

    prefix: str
    data: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    @property
    def num_frames(self) -> int:
        return int(self.data.shape[0])

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> np.ndarray:
        """Frames of utterance `index` (a read-only view into the map)."""
        return self.data[self.offsets[index]: self.offsets[index + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self[index]

    def blocks(self, max_rows: int = DEFAULT_BLOCK_ROWS) -> Iterator[Block]:
        """Runs of whole utterances of at most `max_rows` rows (one longer utterance alone)."""
        count = len(self.lengths)
        start = 0
        while start < count:
            limit = self.offsets[start] + max_rows
            end = int(np.searchsorted(self.offsets, limit, side="right")) - 1
            end = min(max(end, start + 1), count)
            rows = np.asarray(self.data[self.offsets[start]: self.offsets[end]])
            yield Block(start, self.lengths[start:end], rows)
            start = end


def open_features(prefix: str | os.PathLike) -> Features:
    """Memory-map `{prefix}.npy` and check it against `{prefix}.lengths` (see check_features)."""
    npy_path, lengths_path = feature_paths(prefix)
    if not npy_path.exists():
        raise W2vuError(f"{npy_path}: feature file not found; rerun the step that writes it")
    try:
        data = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise W2vuError(f"{npy_path}: not a readable .npy file ({err}); "
                        f"{_rerun_hint(npy_path, lengths_path)}") from None
    if data.ndim != 2 or data.dtype != DTYPE:
        raise W2vuError(f"{npy_path}: expected a 2-D float32 array [frames, dim], got "
                        f"{data.dtype} with shape {data.shape}; "
                        f"{_rerun_hint(npy_path, lengths_path)}")
    lengths = read_lengths(lengths_path)
    total = int(lengths.sum())
    if total != data.shape[0]:
        raise W2vuError(f"{npy_path} has {data.shape[0]} rows but {lengths_path} sums to {total} "
                        f"frames over {len(lengths)} utterances: the two files are out of step "
                        f"(an interrupted or mixed write); {_rerun_hint(npy_path, lengths_path)}")
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return Features(os.fspath(prefix), data, lengths, offsets)


def check_features(prefix: str | os.PathLike) -> tuple[int, int, int]:
    """Validate a feature pair without reading the rows; return (utterances, frames, dim)."""
    feats = open_features(prefix)
    return len(feats), feats.num_frames, feats.dim


def concatenate_features(prefixes: Sequence[str | os.PathLike],
                         out_prefix: str | os.PathLike,
                         block_rows: int = DEFAULT_BLOCK_ROWS) -> tuple[int, int]:
    """Gather shard feature files in the given order into one pair; return (utterances, frames)."""
    parts = [open_features(p) for p in prefixes]
    dims = {p.dim for p in parts if p.num_frames}
    if len(dims) > 1:
        raise W2vuError(f"cannot gather {', '.join(map(str, prefixes))}: feature dimensions "
                        f"differ ({sorted(dims)}); re-extract them with the same model and layer")
    dim = dims.pop() if dims else (parts[0].dim if parts else None)
    with FeatureWriter(out_prefix, dim) as writer:
        for part in parts:
            for block in part.blocks(block_rows):
                writer.extend(block.data, block.lengths)
    return writer.utterances, writer.frames


def format_units(ids: np.ndarray) -> str:
    """One unit line (no newline): ids separated by single spaces, as the reference prints them."""
    return " ".join(map(str, np.asarray(ids).tolist()))


def write_unit_lines(path: str | os.PathLike, rows: Iterable[np.ndarray]) -> int:
    """Write one line of integer ids per utterance atomically; return the number of lines."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="ascii", newline="\n") as out:
        for ids in rows:
            out.write(format_units(ids) + "\n")
            count += 1
    return count


def iter_unit_lines(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Yield each line of a `.src`/`.km` file as int64 ids, streaming; bad tokens name the line."""
    path = Path(path)
    try:
        handle = open(path, encoding="ascii")
    except FileNotFoundError:
        raise W2vuError(f"{path}: unit file not found; rerun the cluster assignment") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield np.array(line.split(), dtype=np.int64)
            except ValueError:
                raise W2vuError(f"{path}:{number}: expected space-separated integer ids; "
                                f"delete {path} and rerun the cluster assignment") from None
