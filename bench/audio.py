"""Audio-stage throughput: the sharded workflow stages against two one-process loops.

Why: the workflow cuts a split into shards that Snakemake runs as parallel jobs (inventory, then
convert -> vad -> trim per shard), and uses the vectorised rVADfast package. Two baselines:

* reference: what fairseq's wav2vec-U pipeline runs, file by file in one process: the audio made
  16 kHz mono WAV first (as the reference requires), then `scripts/vads.py`'s rVAD (the legacy
  `speechproc` code, which the rVADfast wheel still ships in `legacy_files/`), then
  `remove_silence.py` (read again, keep the speech, write). This is the target's baseline.
* same-library loop: one process, file by file, in memory, with the same rVADfast class as ours
  (decode, resample, rVAD, trim, write FLAC). Shows what the stage layout itself costs.

Run: python bench/audio.py [--minutes 10] [--workers 2] [--seed 0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf
import soxr
from scipy.signal import lfilter

from w2vu.audio import SAMPLE_RATE
from w2vu.audio.convert import DurationLimits, convert_shard, to_mono_16k, write_flac16
from w2vu.audio.decode import decode
from w2vu.audio.inventory import SplitRule, build_inventory, shard_list_path
from w2vu.audio.trim import TrimParams, trim_shard
from w2vu.audio.vad import VadParams, speech_segments, vad_shard
from w2vu.demo.corpus import SPEAKERS, speak_utterance
from w2vu.demo.sentences import book_text, split_sentences
from w2vu.demo.synth import Synthesizer
from w2vu.io.manifest import read_manifest

import machine

RATES = (8000, 22050, 44100, 48000)
FORMATS = (("wav", "WAV"), ("flac", "FLAC"))
SPLIT = "train"
# The config schema's defaults (workflow/schemas/config.schema.yaml), as the workflow runs them.
LIMITS = DurationLimits(min_seconds=0.5, max_seconds=120)
TRIM = TrimParams(pad_seconds=0.0, no_speech="keep", min_seconds=0.2)
TARGET_RATIO = 1.8
SAMPLE_EVERY_S = 0.02


@dataclass
class Outcome:
    """What a variant produced (files, trimmed samples) and seconds spent per stage."""

    files: int
    samples: int
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class Measurement:
    """One timed run of a variant in a fresh process, with its memory peaks in MB."""

    outcome: Outcome
    wall_s: float
    max_process_mb: float
    tree_mb: float


def write_source(stem: Path, audio: np.ndarray, native: int, index: int) -> None:
    """Write one utterance at the index's rate, format and channel count (every third stereo)."""
    rate = RATES[index % len(RATES)]
    ext, fmt = FORMATS[(index // len(RATES)) % len(FORMATS)]
    samples = 0.9 * (soxr.resample(audio, native, rate, quality="HQ") if rate != native else audio)
    if index % 3 == 0:
        samples = np.stack([samples, 0.7 * samples], axis=1)
    stem.parent.mkdir(parents=True, exist_ok=True)
    sf.write(stem.with_suffix(f".{ext}"), samples, rate, format=fmt, subtype="PCM_16")


def make_corpus(out_dir: Path, minutes: float, seed: int) -> tuple[int, float]:
    """Synthesise shuffled book sentences until `minutes`; return (files, seconds of audio)."""
    rng = random.Random(seed)
    sentences = split_sentences(book_text())
    rng.shuffle(sentences)
    synth = Synthesizer()
    seconds, index = 0.0, 0
    while seconds < minutes * 60:
        speaker = SPEAKERS[index % len(SPEAKERS)]
        audio = speak_utterance(synth, sentences[index], speaker, rng)
        write_source(out_dir / f"spk{index % len(SPEAKERS)}" / f"utt{index:05d}", audio,
                     synth.sample_rate, index)
        seconds += len(audio) / synth.sample_rate
        index += 1
    return index, seconds


def timed(stages: dict[str, float], name: str, work: Callable[[], object]) -> object:
    """Run `work`, adding its duration to `stages[name]`; return its result."""
    start = time.perf_counter()
    result = work()
    stages[name] = stages.get(name, 0.0) + time.perf_counter() - start
    return result


def baseline_file(source: Path, target: Path, stages: dict[str, float]) -> int:
    """The reference steps for one file, in memory; return the trimmed length in samples."""
    data, rate = timed(stages, "decode", lambda: decode(source))
    mono = timed(stages, "resample", lambda: to_mono_16k(data, rate))
    segments = timed(stages, "vad", lambda: speech_segments(mono, SAMPLE_RATE, VadParams()))
    kept = np.concatenate([mono[s:e] for s, e in segments]) if segments else mono
    timed(stages, "trim+write", lambda: write_flac16(target, kept))
    return len(kept)


def run_baseline(corpus: Path, work: Path, _workers: int) -> Outcome:
    """fairseq-style: one process, file by file, decode -> 16 kHz -> rVAD -> trim -> FLAC."""
    sources = sorted(p for p in corpus.rglob("*") if p.is_file())
    stages: dict[str, float] = {}
    samples = sum(baseline_file(src, (work / src.relative_to(corpus)).with_suffix(".flac"),
                                stages) for src in sources)
    return Outcome(len(sources), samples, stages)


def legacy_speechproc():
    """The reference's rVAD module (legacy_files/speechproc.py inside the rVADfast wheel)."""
    import importlib.util

    import rVADfast

    path = Path(rVADfast.__file__).parent / "legacy_files" / "speechproc.py"
    spec = importlib.util.spec_from_file_location("legacy_speechproc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_vad(data: np.ndarray, sp) -> list[tuple[int, int]]:
    """fairseq `scripts/vads.py`: legacy rVAD with the reference parameters, 2 passes."""
    ft, flen, fsh10, nfr10 = sp.sflux(data, SAMPLE_RATE, 0.025, 0.01, 512)
    pv01 = np.less_equal(ft, 0.5).astype(float)
    pvblk = sp.pitchblockdetect(pv01, ft.copy(), nfr10, 1)
    fdata = lfilter(np.array([0.9770, -0.9770]), np.array([1.0, -0.9540]), data, axis=0)
    noise, _, n_noise = sp.snre_highenergy(fdata, nfr10, flen, fsh10, np.exp(-50), pv01, pvblk)
    for j in range(n_noise):
        fdata[int(noise[j, 0]): int(noise[j, 1]) + 1] = 0
    labels = np.asarray(sp.snre_vad(fdata, nfr10, flen, fsh10, np.exp(-50), pv01, pvblk, 0.4))
    edges = np.flatnonzero(np.diff(np.r_[0, labels.astype(int), 0]))
    return [(int(a) * 160, min(int(b) * 160, len(data))) for a, b in zip(edges[::2], edges[1::2])]


def prepare_16k(source: Path, wav: Path) -> None:
    """What the reference expects before it starts: 16 kHz mono WAV."""
    data, rate = decode(source)
    wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(wav, to_mono_16k(data, rate), SAMPLE_RATE, subtype="PCM_16")


def remove_silence(wav: Path, segments: list[tuple[int, int]], target: Path) -> int:
    """fairseq `remove_silence.py` for one file: read again, keep the speech, write."""
    audio = sf.read(wav)[0]
    kept = np.concatenate([audio[s:e] for s, e in segments]) if segments else audio
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(target, kept, SAMPLE_RATE, subtype="PCM_16")
    return len(kept)


def run_reference(corpus: Path, work: Path, _workers: int) -> Outcome:
    """The reference pipeline in one process: to 16 kHz WAV, then vads.py, then remove_silence."""
    sp = legacy_speechproc()
    sources = sorted(p for p in corpus.rglob("*") if p.is_file())
    wavs = [(work / "16k" / src.relative_to(corpus)).with_suffix(".wav") for src in sources]
    targets = [work / "trimmed" / wav.relative_to(work / "16k") for wav in wavs]
    stages: dict[str, float] = {}
    timed(stages, "to 16k wav", lambda: list(map(prepare_16k, sources, wavs)))
    segments = timed(stages, "vads.py", lambda: [reference_vad(sf.read(w)[0], sp) for w in wavs])
    kept = timed(stages, "remove_silence", lambda: list(map(remove_silence, wavs, segments,
                                                              targets)))
    return Outcome(len(sources), sum(kept), stages)


def run_shard(shard_list: Path, work: Path) -> Outcome:
    """One shard's convert -> vad -> trim, as the workflow's three jobs run it (1 worker each)."""
    shard, stages = shard_list.stem, {}
    conv = work / "converted" / SPLIT
    vads = work / "vad" / SPLIT / f"{shard}.vads"
    trim = work / "trimmed" / SPLIT
    timed(stages, "convert", lambda: convert_shard(
        shard_list, SPLIT, conv / shard, conv / f"{shard}.tsv", conv / f"{shard}.rejects.tsv",
        LIMITS))
    timed(stages, "vad", lambda: vad_shard(conv / f"{shard}.tsv", vads, VadParams()))
    timed(stages, "trim", lambda: trim_shard(
        shard_list, SPLIT, conv / f"{shard}.tsv", vads, trim / shard, trim / f"{shard}.tsv",
        trim / f"{shard}.rejects.tsv", TRIM))
    rows = read_manifest(trim / f"{shard}.tsv").rows
    return Outcome(len(rows), sum(n for _, n in rows), stages)


def run_ours(corpus: Path, work: Path, workers: int) -> Outcome:
    """The workflow's stages: inventory (hash split train=1, one shard per worker), then the
    shards in parallel processes, as `snakemake --cores N` runs one job per shard."""
    inventory, stages = work / "inventory", {}
    timed(stages, "inventory", lambda: build_inventory(
        patterns=[str(corpus)], table=None, references=None, extensions=["wav", "flac"],
        rule=SplitRule("hash", (SPLIT,), fractions=(1.0,)), shards=workers, out_dir=inventory,
        out_rejects=inventory / "rejects.tsv"))
    lists = [shard_list_path(inventory, shard) for shard in range(workers)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        shards = list(pool.map(run_shard, lists, repeat(work)))
    for outcome in shards:
        for name, seconds in outcome.stages.items():
            stages[name] = stages.get(name, 0.0) + seconds
    return Outcome(sum(o.files for o in shards), sum(o.samples for o in shards), stages)


Variant = Callable[[Path, Path, int], Outcome]


def _child(variant: Variant, args: tuple[Path, Path, int], conn: Connection) -> None:
    """Run a variant in this fresh process; send back its wall time and rusage peaks (kB)."""
    start = time.perf_counter()
    outcome = variant(*args)
    wall = time.perf_counter() - start
    peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    conn.send((outcome, wall, peak_kb))
    conn.close()


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants right now (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def measure(variant: Variant, corpus: Path, work: Path, workers: int) -> Measurement:
    """Run a variant in a spawned process (clean memory), sampling its process tree's RSS."""
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(variant, (corpus, work, workers), sender))
    proc.start()
    tree_peak = 0
    while not receiver.poll(SAMPLE_EVERY_S):
        tree_peak = max(tree_peak, tree_rss(proc.pid))
    outcome, wall, peak_kb = receiver.recv()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{variant.__name__} failed with exit code {proc.exitcode}")
    return Measurement(outcome, wall, peak_kb / 1024, tree_peak / 2**20)


def best_of(variant: Variant, corpus: Path, root: Path, workers: int,
            repeats: int) -> Measurement:
    """The fastest of `repeats` runs, each into a fresh output folder."""
    runs = [measure(variant, corpus, root / f"{variant.__name__}-{workers}-{i}", workers)
            for i in range(repeats)]
    return min(runs, key=lambda m: m.wall_s)


def print_table(rows: dict[str, Measurement], audio_s: float) -> None:
    """The results table: time, throughput, memory, files and trimmed audio per variant."""
    print(f"{'variant':<18}{'wall s':>8}{'x real time':>13}{'peak RSS MB':>13}"
          f"{'tree RSS MB':>13}{'files':>7}{'trimmed samples':>17}")
    for name, m in rows.items():
        print(f"{name:<18}{m.wall_s:>8.2f}{audio_s / m.wall_s:>13.1f}{m.max_process_mb:>13.0f}"
              f"{m.tree_mb:>13.0f}{m.outcome.files:>7}{m.outcome.samples:>17}")
    print("peak RSS: largest single process (getrusage self/children); tree RSS: sampled sum "
          "over the process and its workers")


def print_stages(rows: dict[str, Measurement]) -> None:
    """Seconds per stage; for the sharded run, summed over the worker processes."""
    for name, m in rows.items():
        parts = ", ".join(f"{stage} {s:.2f}" for stage, s in m.outcome.stages.items())
        print(f"stage seconds, {name}: {parts}")


def print_verdict(reference: Measurement, baseline: Measurement, serial: Measurement,
                  ours: Measurement) -> None:
    """Throughput ratios (target against the reference), the same-library ratio split into work
    per file and parallel speedup, and whether both kept the same audio."""
    ratio = reference.wall_s / ours.wall_s
    print(f"throughput ratio ours/reference: {ratio:.2f}x "
          f"(target >= {TARGET_RATIO}x: {'met' if ratio >= TARGET_RATIO else 'NOT met'})")
    print(f"throughput ratio ours/same-library loop: {baseline.wall_s / ours.wall_s:.2f}x")
    print(f"  = loop/ours at 1 worker {baseline.wall_s / serial.wall_s:.2f}x "
          f"* ours' parallel speedup {serial.wall_s / ours.wall_s:.2f}x")
    same_files = baseline.outcome.files == ours.outcome.files
    drift = abs(ours.outcome.samples - baseline.outcome.samples) / max(baseline.outcome.samples, 1)
    print(f"files kept: loop {baseline.outcome.files}, ours {ours.outcome.files} "
          f"({'same' if same_files else 'DIFFERENT'}); "
          f"trimmed samples differ by {100 * drift:.3f}%")
    legacy_drift = abs(reference.outcome.samples - ours.outcome.samples) / max(
        reference.outcome.samples, 1)
    print(f"trimmed samples, reference (legacy rVAD) vs ours (rVADfast): "
          f"{100 * legacy_drift:.2f}% apart")


def parse_args() -> argparse.Namespace:
    """Command-line settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="audio to synthesise")
    parser.add_argument("--workers", type=int, default=2, help="shards = parallel processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant; best is shown")
    return parser.parse_args()


def main() -> None:
    """Synthesise the corpus; time the baseline and ours at 1 and N workers; compare."""
    args = parse_args()
    print(machine.describe())
    with tempfile.TemporaryDirectory(prefix="w2vu-bench-audio-") as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        start = time.perf_counter()
        files, audio_s = make_corpus(corpus, args.minutes, args.seed)
        print(f"corpus: {files} files, {audio_s:.1f} s of speech at {RATES} Hz, WAV/FLAC, "
              f"every third stereo (synthesised in {time.perf_counter() - start:.1f} s)")
        rows = {"reference": best_of(run_reference, corpus, root, 1, 1),
                "same-library loop": best_of(run_baseline, corpus, root, 1, args.repeats)}
        for workers in sorted({1, args.workers}):
            rows[f"ours ({workers} worker{'s' if workers > 1 else ''})"] = best_of(
                run_ours, corpus, root, workers, args.repeats)
    print(f"best of {args.repeats} runs each (the reference, ~30x slower, once)")
    print_table(rows, audio_s)
    print_stages(rows)
    measured = list(rows.values())
    print_verdict(*measured[:3], measured[-1])


if __name__ == "__main__":
    main()
