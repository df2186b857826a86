"""Kaldi interop for self-training (reference §4.1): export a data dir + dict dir (importing the
decoded labels back: `kaldi_import.py`).

Why: kaldi-hmm-gmm has no decision-tree building, so w2vu reproduces only the reference's
monophone stage (`hmm/`). A user with a full Kaldi install can run the reference's triphone
recipe (`train_subset_lgbeam.sh`: mono, tri1, tri2b, optionally tri3b) on w2vu's features and GAN
pseudo-labels from an export, and bring the decoded labels back as the next self-training round.

`export_kaldi` writes, into `out_dir` (replaced as a whole, atomically):

* `data/`: `feats.ark` (uncompressed float32 matrices written with kaldi-io; the reference pipes
  through `copy-feats --compress=true`, which needs Kaldi binaries) and `feats.scp`
  (`uttNNNNNNNNNN /abs/out_dir/data/feats.ark:OFFSET`, the form `copy-feats ark,scp:` writes: the
  offset points past the key, at the matrix), `text` (the pseudo-labels), `utt2spk` and `spk2utt`
  (identity: every utterance is its own speaker, so CMVN is per utterance).
* `data_gt/` when references are given: the same utterances with the reference transcripts as
  `text` (the reference's `{split}_gt`, used for reporting only).
* `dict/`: a Kaldi `local/dict` dir as the reference's `local/prepare_lang.sh` makes it:
  `lexicon.txt` (`SIL SIL`, `<SIL> SIL`, `<UNK> SIL`, each phone -> itself),
  `silence_phones.txt` and `optional_silence.txt` (`SIL`), `nonsilence_phones.txt` (the
  dictionary's phones without the fairseq specials and `<SIL>`), `extra_questions.txt` (`SIL`,
  then all phones on one line). Deviation: the word `<SIL>` (pronounced SIL, like `<UNK>`) is
  added so that w2vu's phone LMs, which have `<SIL>` as a word, go through `arpa2fst
  --read-symbol-table` without n-grams being dropped; w2vu's own HMM lexicon has it too.
* `README.txt`: the Kaldi commands to run and how to import the result.

Utterance ids are `utt%010d` of the zero-based line index (the reference's ids), so ids keep
their meaning even where utterances are left out:

* an utterance with no frames is left out of `data/` entirely (Kaldi cannot hold an empty
  matrix); it comes back as an empty line on import;
* an utterance with frames but an empty pseudo-label line stays in `feats.scp`, `utt2spk` and
  `spk2utt` (so Kaldi decodes it and the next round can label it) but is left out of `text`
  (an empty transcript would train silence on speech; `hmm/train.py` leaves it out of training too).
  Kaldi's training scripts skip utterances without a transcript; `utils/split_data.sh` prints a
  line-count warning, which is expected. `utils/fix_data_dir.sh` would drop them from decoding.

The counts (all = written + no frames; written = with text + empty labels) are logged and
returned. `<SIL>` in the pseudo-labels is kept (a word pronounced SIL).

`import_kaldi_text` reads a Kaldi `text` (e.g. `decode_phone.sh`'s `dec_data/{split}/text`) back
into a w2vu transcript: one line per utterance in index order, missing utterances as empty lines,
`SIL`, `<SIL>`, `!SIL` and `<UNK>` dropped.

kaldi-io (0.9.8) on import sets `KALDI_ROOT` to a path of its author's machine when unset, prints
a warning banner when that path does not exist, and prepends Kaldi binary folders to `PATH`.
Only its plain-file reader and writer are used here (no pipes, so no Kaldi binaries), so it is
imported lazily with `KALDI_ROOT` pointing at an existing folder (no banner) and `KALDI_ROOT` and
`PATH` restored afterwards: the import leaves the environment as it found it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_dir
from w2vu.io.dictionary import SIL, SPECIALS, read_fairseq_dict
from w2vu.io.features import Features, feature_paths, open_features
from w2vu.io.lines import read_text_lines

log = logging.getLogger(__name__)

KALDI_SIL = "SIL"  # the reference's Kaldi silence phone, also a word of the lexicon
KALDI_UNK = "<UNK>"  # the reference's OOV word, pronounced SIL
RESERVED_KALDI_SYMBOLS = (KALDI_SIL, KALDI_UNK, "<eps>", "!SIL")
STRIPPED_ON_IMPORT = frozenset({KALDI_SIL, SIL, KALDI_UNK, "!SIL"})
UTT_ID = re.compile(r"utt(\d{10})")
FEATS_ARK = "feats.ark"


def utt_id(index: int) -> str:
    """The reference's utterance id for line `index` (zero-based)."""
    return f"utt{index:010d}"


# ------------------------------------------------------------------------------------ kaldi-io

def kaldi_io_module() -> ModuleType:
    """kaldi_io, imported without its banner and without leaving KALDI_ROOT/PATH changed."""
    saved = {key: os.environ.get(key) for key in ("KALDI_ROOT", "PATH")}
    try:
        root = saved["KALDI_ROOT"]
        if not root or not os.path.isdir(root):
            # Any existing folder silences the "path does not exist" banner; no binary is used.
            os.environ["KALDI_ROOT"] = os.path.dirname(os.path.abspath(__file__))
        with contextlib.redirect_stderr(io.StringIO()):
            import kaldi_io
    except ImportError:
        raise W2vuError("kaldi-io is not installed; pip install kaldi-io==0.9.8") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return kaldi_io


# ------------------------------------------------------------------------------------- inputs

def kaldi_phones(dictionary: str | os.PathLike) -> list[str]:
    """Non-silence phones of a fairseq dictionary: its symbols without specials and `<SIL>`."""
    phones = [s for s in read_fairseq_dict(dictionary) if s not in SPECIALS and s != SIL]
    clash = sorted(set(phones) & set(RESERVED_KALDI_SYMBOLS))
    if clash:
        raise W2vuError(f"{dictionary}: phones {clash} clash with the Kaldi lexicon's reserved "
                        f"symbols {list(RESERVED_KALDI_SYMBOLS)}; rename them in the dictionary")
    if not phones:
        raise W2vuError(f"{dictionary}: no phones besides {SIL} and the fairseq specials; "
                        "rebuild dict.phn.txt (stage phones)")
    return phones


def read_pseudo_labels(path: str | os.PathLike, phones: Sequence[str],
                       features: Features) -> list[list[str]]:
    """One Kaldi word list per utterance (`<SIL>` kept); unknown phones name the line."""
    path = Path(path)
    lines = read_text_lines(path, "pseudo-labels", "pass the GAN's transcript (one line of phones "
                        "per utterance)")
    if len(lines) != len(features):
        raise W2vuError(f"{path} has {len(lines)} lines but {features.prefix}.lengths lists "
                        f"{len(features)} utterances; the pseudo-labels must be line-aligned "
                        "with the features (regenerate them from these features)")
    known = set(phones)
    labels = []
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        bad = sorted({t for t in tokens if t not in known and t != SIL})
        if bad:
            raise W2vuError(f"{path}:{number}: phones {bad} are not in the phone dictionary; "
                            "make the labels with the same dict.phn.txt")
        labels.append(tokens)
    return labels


def read_references(path: str | os.PathLike, features: Features) -> list[list[str]]:
    """Reference transcripts, one per utterance, `<SIL>` dropped (scoring ignores silence)."""
    path = Path(path)
    lines = read_text_lines(path, "references",
                            "pass the split's .phn file (one line per utterance)")
    if len(lines) != len(features):
        raise W2vuError(f"{path} has {len(lines)} lines but {features.prefix}.lengths lists "
                        f"{len(features)} utterances; pass the references of the same split")
    return [[t for t in line.split() if t != SIL] for line in lines]


# ------------------------------------------------------------------------------------- export

@dataclass(frozen=True)
class ExportReport:
    """What went where: utterances = written + no_frames; written = with_text + empty_labels."""

    out_dir: Path
    utterances: int
    written: int
    no_frames: int
    with_text: int
    empty_labels: int
    frames: int
    dim: int
    phones: int
    references: int | None = None  # utterances with a non-empty reference in data_gt/text


def _table(rows: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{key} {value}".rstrip() + "\n" for key, value in rows)


def _write_ark(features: Features, keep: Sequence[int], tmp_ark: Path) -> list[int]:
    """Write utterances `keep` to a Kaldi ark; return each one's scp offset."""
    kaldi_io = kaldi_io_module()
    offsets = []
    with open(tmp_ark, "wb") as ark:
        for index in keep:
            key = utt_id(index)
            start = ark.tell()
            kaldi_io.write_mat(ark, np.ascontiguousarray(features[index]), key=key)
            offsets.append(start + len(key) + 1)  # past "key ", at the "\0B" binary marker
    return offsets


def _check_ark(features: Features, keep: Sequence[int], offsets: Sequence[int],
               ark_path: Path) -> None:
    """Every scp entry points at its key and a float32 header of the right shape; the first and
    last matrices read back through kaldi-io equal the features exactly."""
    kaldi_io = kaldi_io_module()
    with open(ark_path, "rb") as ark:
        for index, offset in zip(keep, offsets):
            key = utt_id(index).encode() + b" "
            ark.seek(offset - len(key))
            head = ark.read(len(key) + 15)
            rows, dim = features[index].shape
            expected = key + b"\0BFM \x04" + struct.pack("<i", rows) + b"\x04" + struct.pack(
                "<i", dim)
            if head != expected:
                raise RuntimeError(f"{ark_path}: entry {utt_id(index)} at byte {offset} does not "
                                   "read back; the ark writer is broken")
    for i in {0, len(keep) - 1}:
        back = kaldi_io.read_mat(f"{ark_path}:{offsets[i]}")
        if not np.array_equal(back, features[keep[i]]):
            raise RuntimeError(f"{ark_path}: {utt_id(keep[i])} reads back different values")


def _write_dict_dir(phones: Sequence[str], out: Path) -> None:
    out.mkdir()
    (out / "silence_phones.txt").write_text(f"{KALDI_SIL}\n", encoding="utf-8")
    (out / "optional_silence.txt").write_text(f"{KALDI_SIL}\n", encoding="utf-8")
    (out / "nonsilence_phones.txt").write_text("".join(f"{p}\n" for p in phones),
                                               encoding="utf-8")
    lexicon = [(KALDI_SIL, KALDI_SIL), (SIL, KALDI_SIL), (KALDI_UNK, KALDI_SIL),
               *((p, p) for p in phones)]
    (out / "lexicon.txt").write_text(_table(lexicon), encoding="utf-8")
    (out / "extra_questions.txt").write_text(f"{KALDI_SIL}\n{' '.join(phones)}\n",
                                             encoding="utf-8")


def _write_data_dir(out: Path, scp: str, keep: Sequence[int],
                    transcripts: Sequence[list[str]]) -> int:
    """feats.scp, utt2spk, spk2utt for `keep`; text for those with a non-empty transcript."""
    out.mkdir(exist_ok=True)  # data/ already holds feats.ark
    (out / "feats.scp").write_text(scp, encoding="utf-8")
    identity = _table([(utt_id(i), utt_id(i)) for i in keep])
    (out / "utt2spk").write_text(identity, encoding="utf-8")
    (out / "spk2utt").write_text(identity, encoding="utf-8")
    text = [(utt_id(i), " ".join(transcripts[i])) for i in keep if transcripts[i]]
    (out / "text").write_text(_table(text), encoding="utf-8")
    return len(text)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def export_kaldi(features_prefix: str | os.PathLike, labels_txt: str | os.PathLike,
                 dictionary: str | os.PathLike, out_dir: str | os.PathLike,
                 references_phn: str | os.PathLike | None = None) -> ExportReport:
    """Write a Kaldi data dir (+ ground-truth dir) and dict dir for one split into `out_dir`.

    `out_dir` is replaced as a whole and only appears once complete. Its absolute path is written
    into `feats.scp`, so moving the folder afterwards means exporting again.
    """
    final = Path(out_dir).absolute()
    if re.search(r"\s", str(final)):
        raise W2vuError(f"{final}: Kaldi scp files cannot hold paths with whitespace; export to "
                        "a folder whose absolute path has no spaces")
    inputs = [*feature_paths(features_prefix), Path(labels_txt), Path(dictionary)]
    if references_phn is not None:
        inputs.append(Path(references_phn))
    for path in inputs:
        if _inside(path.absolute(), final):
            raise W2vuError(f"{path} lies inside the export folder {final}, which is replaced "
                            "as a whole; export to a separate folder")
    features = open_features(features_prefix)
    phones = kaldi_phones(dictionary)
    labels = read_pseudo_labels(labels_txt, phones, features)
    refs = read_references(references_phn, features) if references_phn is not None else None

    keep = [i for i in range(len(features)) if features.lengths[i] > 0]
    if not keep:
        raise W2vuError(f"{features.prefix}.lengths: none of the {len(features)} utterances has "
                        "frames; nothing to export (check the feature extraction)")
    if not any(labels[i] for i in keep):
        raise W2vuError(f"{labels_txt}: every pseudo-label line of an utterance with frames is "
                        "empty, so Kaldi would have nothing to train on; regenerate the labels")

    ark_final = final / "data" / FEATS_ARK
    with atomic_dir(final) as tmp:
        (tmp / "data").mkdir()
        offsets = _write_ark(features, keep, tmp / "data" / FEATS_ARK)
        _check_ark(features, keep, offsets, tmp / "data" / FEATS_ARK)
        scp = _table([(utt_id(i), f"{ark_final}:{off}") for i, off in zip(keep, offsets)])
        with_text = _write_data_dir(tmp / "data", scp, keep, labels)
        with_refs = None
        if refs is not None:
            with_refs = _write_data_dir(tmp / "data_gt", scp, keep, refs)
        _write_dict_dir(phones, tmp / "dict")
        report = ExportReport(
            out_dir=final, utterances=len(features), written=len(keep),
            no_frames=len(features) - len(keep), with_text=with_text,
            empty_labels=len(keep) - with_text, frames=features.num_frames, dim=features.dim,
            phones=len(phones), references=with_refs)
        (tmp / "README.txt").write_text(
            _readme(report, features_prefix, labels_txt, dictionary, references_phn),
            encoding="utf-8")
    log.info("Kaldi export %s: %d utterances = %d written (%d with text + %d with an empty "
             "pseudo-label, decoded only) + %d with no frames (left out); %d frames, %d-d, "
             "%d phones + %s", final, report.utterances, report.written, report.with_text,
             report.empty_labels, report.no_frames, report.frames, report.dim, report.phones,
             KALDI_SIL)
    if report.empty_labels or report.no_frames:
        log.warning("Kaldi export %s: %d utterances without a transcript and %d without frames "
                    "are not in data/text", final, report.empty_labels, report.no_frames)
    return report


def _readme(report: ExportReport, features_prefix: str | os.PathLike,
            labels_txt: str | os.PathLike, dictionary: str | os.PathLike,
            references_phn: str | os.PathLike | None) -> str:
    e = report.out_dir
    gt = (f"  data_gt/   the same utterances, text = references ({report.references} non-empty) "
          "from\n"
          f"             {Path(references_phn).absolute()} (scoring only; the reference's "
          "{split}_gt)\n" if references_phn is not None else "")
    return f"""\
w2vu Kaldi export (reference section 4.1: the input of kaldi_self_train/st)
===========================================================================

Made from
  features:      {Path(os.fspath(features_prefix)).absolute()}.npy / .lengths
                 ({report.utterances} utterances, {report.frames} frames, {report.dim}-d)
  pseudo-labels: {Path(labels_txt).absolute()}
  dictionary:    {Path(dictionary).absolute()} ({report.phones} phones + {KALDI_SIL})

Contents
  data/      Kaldi data dir: feats.ark (float32, uncompressed) + feats.scp, text (pseudo-labels),
             utt2spk = spk2utt (identity: each utterance its own speaker)
{gt}  dict/      Kaldi local/dict dir: lexicon.txt (SIL, <SIL> and <UNK> -> SIL, each phone ->
             itself; <SIL> is w2vu's addition to the reference's lexicon, for phone LMs with it),
             silence_phones.txt = optional_silence.txt = SIL, nonsilence_phones.txt,
             extra_questions.txt ({{SIL}}, {{all phones}})

Utterance ids: uttNNNNNNNNNN = zero-based line number in the feature and label files.
  {report.utterances} utterances = {report.written} in data/ + {report.no_frames} with no frames
  (left out: Kaldi cannot hold an empty matrix; they come back as empty lines on import).
  {report.written} in data/ = {report.with_text} in data/text + {report.empty_labels} with an empty
  pseudo-label line: those are in feats.scp, utt2spk and spk2utt (so they get decoded) but not in
  text (an empty transcript would train silence on speech). Kaldi's training scripts skip them;
  utils/split_data.sh warns about the line counts, which is expected. Do not run
  utils/fix_data_dir.sh on data/: it would drop them from decoding too.
feats.scp holds absolute paths into {e}/data/feats.ark: export again after moving this folder.
Kaldi's utils/validate_data_dir.sh wants text for every utterance; pass it --no-text.

Running the reference's triphone recipe (needs a full Kaldi install)
--------------------------------------------------------------------
Export the train and the valid split separately, with the same dictionary, e.g. to $TRAIN and
$VALID. Copy fairseq's examples/wav2vec/unsupervised/kaldi_self_train/st to $KALDI_ROOT/egs/ and
link steps/ and utils/ from $KALDI_ROOT/egs/wsj/s5 into it (the reference's setup). Then, with $W a
new work folder (the exports themselves stay untouched; data/ must be $W/data for decode_phone.sh):

  cd $KALDI_ROOT/egs/st && . ./cmd.sh && . ./path.sh
  D=$W/data
  mkdir -p $D/train $D/valid $D/valid_gt $D/local $W/exp
  cp $TRAIN/data/{{feats.scp,text,utt2spk,spk2utt}} $D/train/
  cp $VALID/data/{{feats.scp,text,utt2spk,spk2utt}} $D/valid/
  cp $VALID/data_gt/{{feats.scp,text,utt2spk,spk2utt}} $D/valid_gt/   # if exported with references
  cp -r $TRAIN/dict $D/local/dict

  # lang: 1-state phone HMMs (20 ms frames), 3-state silence, no position-dependent phones
  utils/prepare_lang.sh --sil-prob 0.5 --position-dependent-phones false \\
    --num_sil_states 3 --num_nonsil_states 1 $D/local/dict "<UNK>" $D/local/lang_tmp $D/lang
  # lang_test: the phone LM (ARPA over the phones above; <SIL> and <UNK> may occur in it)
  local/prepare_lm.sh $PHONE_LM_ARPA $D

  for x in train valid; do
    steps/compute_cmvn_stats.sh $D/$x $W/exp/make_feat/$x $W/feats/$x
  done
  cp $D/valid/cmvn.scp $D/valid_gt/

  # mono (2000 utterances), tri1 (5000), tri2b (all); --max_stage 4 adds tri3b (SAT)
  local/train_subset_lgbeam.sh --out_root $W --out_name exp --train train --valid valid \\
    --mono_size 2000 --tri1_size 5000 --tri2b_size -1 --tri3b_size -1 \\
    --stage 1 --max_stage 3 $D $D/lang $D/lang_test

  # unsupervised selection of model and LMWT.WIP (KenLM binary of the same phone LM)
  local/unsup_select_decode.sh --split valid --kenlm_path $PHONE_LM_BIN \\
    --ref_txt $D/valid_gt/text --psd_txt $D/valid/text $W/exp

  # decode train and valid with the selected model, e.g. tri2b at 8.0.0:
  # set out_dir=$W dec_exp=tri2b dec_lmparam=8.0.0 dec_script=steps/decode.sh in decode_phone.sh
  bash decode_phone.sh        # -> $W/dec_data/{{train,valid}}/text

Importing the decoded labels as the next self-training round
------------------------------------------------------------
  python -c "from w2vu.selftrain.kaldi_import import import_kaldi_text as f; \\
    f('$W/dec_data/train/text', {report.utterances}, 'train.txt')"

writes one line per utterance in this export's order ({report.utterances} lines; utterances the
Kaldi text lacks become empty lines), with SIL, <SIL>, !SIL and <UNK> dropped: a transcript that
w2vu scores and uses as pseudo-labels like the GAN's.
"""
