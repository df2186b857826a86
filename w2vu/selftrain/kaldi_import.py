"""Kaldi decoded labels back into w2vu (reference §4.1): a Kaldi `text` of a `kaldi_export.py`
export becomes a transcript, one line per utterance, used as the next self-training round's
pseudo-labels like the GAN's."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.lines import read_text_lines, write_token_lines
from w2vu.selftrain.kaldi_export import STRIPPED_ON_IMPORT, UTT_ID, kaldi_phones

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportReport:
    """lines = from_kaldi + missing; `stripped` counts the silence/unknown tokens dropped."""

    out_txt: Path
    lines: int
    from_kaldi: int
    missing: int
    stripped: int


def _parse_kaldi_text(path: Path, num_utterances: int, phones: set[str] | None
                      ) -> dict[int, list[str]]:
    hyps: dict[int, list[str]] = {}
    for number, line in enumerate(read_text_lines(path, "Kaldi text", "pass a Kaldi data dir's "
                                              "text file (uttNNNNNNNNNN phones...)"), start=1):
        fields = line.split()
        if not fields:
            continue
        match = UTT_ID.fullmatch(fields[0])
        where = f"{path}:{number}"
        if match is None:
            raise W2vuError(f"{where}: {fields[0]!r} is not an utterance id of a w2vu export "
                            "(uttNNNNNNNNNN, 10 digits); import the text of a decode of that "
                            "export")
        index = int(match.group(1))
        if index >= num_utterances:
            raise W2vuError(f"{where}: {fields[0]} is beyond the split's {num_utterances} "
                            "utterances; import it with the features it was exported from")
        if index in hyps:
            raise W2vuError(f"{where}: {fields[0]} occurs twice; the Kaldi text must list each "
                            "utterance once")
        tokens = fields[1:]
        if phones is not None:
            bad = sorted({t for t in tokens if t not in phones and t not in STRIPPED_ON_IMPORT})
            if bad:
                hint = (" (integer ids: map a .tra file with utils/int2sym.pl -f 2- "
                        "lang/words.txt first)" if all(t.isdigit() for t in bad) else "")
                raise W2vuError(f"{where}: words {bad[:10]} are not phones of the dictionary"
                                f"{hint}; decode with the lang made from the same dictionary")
        hyps[index] = tokens
    return hyps


def import_kaldi_text(kaldi_text: str | os.PathLike, num_utterances: int,
                      out_txt: str | os.PathLike,
                      dictionary: str | os.PathLike | None = None) -> ImportReport:
    """Turn a Kaldi `text` of an export into a w2vu transcript (one line per utterance).

    Missing utterances become empty lines; `SIL`, `<SIL>`, `!SIL` and `<UNK>` are dropped. With
    `dictionary`, every other word must be one of its phones.
    """
    path = Path(kaldi_text)
    if num_utterances < 0:
        raise ValueError(f"num_utterances must be >= 0, got {num_utterances}")
    phones = set(kaldi_phones(dictionary)) if dictionary is not None else None
    hyps = _parse_kaldi_text(path, num_utterances, phones)
    stripped = 0
    lines = []
    for index in range(num_utterances):
        tokens = hyps.get(index, [])
        kept = [t for t in tokens if t not in STRIPPED_ON_IMPORT]
        stripped += len(tokens) - len(kept)
        lines.append(kept)
    write_token_lines(out_txt, lines)
    report = ImportReport(out_txt=Path(out_txt), lines=num_utterances, from_kaldi=len(hyps),
                          missing=num_utterances - len(hyps), stripped=stripped)
    log.info("Kaldi import %s -> %s: %d lines = %d from Kaldi + %d missing (empty); %d "
             "silence/unknown tokens dropped", path, out_txt, report.lines, report.from_kaldi,
             report.missing, report.stripped)
    if report.missing:
        log.warning("Kaldi import %s: %d of %d utterances have no line there (written empty)",
                    path, report.missing, num_utterances)
    return report
