"""`w2vu export-hf`: a model whose phones come from a fine-tuned SSL backbone, as a Hugging Face
CTC folder (model, feature extractor, phone tokenizer) that `transformers.pipeline(
"automatic-speech-recognition", model=FOLDER)` loads and that returns phone strings.

Why only then: a GAN generator or the small CTC encoder reads PCA/pooled features that w2vu
computes, which no Hugging Face processor reproduces; exporting them would give another
recognizer. The tokenizer decodes as w2vu's greedy CTC does: repeats merged, the blank (`<s>`)
removed, then `<SIL>` (the word delimiter) removed. Two differences remain: the feature extractor
normalises with eps 1e-7 where fairseq's layer norm uses 1e-5 (which matters only for near-silent
input), and the other fairseq specials (`<pad>`, `</s>`, `<unk>`), which w2vu drops, would be
printed; a model trained on phone labels does not predict them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from w2vu.errors import W2vuError
from w2vu.io.atomic import atomic_dir
from w2vu.io.dictionary import SIL, SPECIALS
from w2vu.model import folder as layout
from w2vu.model.folder import ModelFolder

BLANK = SPECIALS[0]  # `<s>`: the CTC blank of every w2vu phone model


def _not_exportable(model: ModelFolder) -> str | None:
    """Why this model has no Hugging Face equivalent, or None."""
    if model.system == "ctc" and model.recipe["selftrain"]["ctc_finetune"]:
        return None
    what = {"gan": "the GAN generator on pooled PCA features",
            "gan_words": "the GAN's words decoded over a WFST and spelt through the lexicon",
            "hmm": "the GMM-HMM",
            "ctc": "the small CTC encoder on w2vu's features"}[model.system]
    return (f"{model.root}: its phones come from {what}, which no Hugging Face processor "
            "reproduces; export-hf needs a model whose final system is a CTC round that "
            "fine-tuned the SSL backbone (features.backbone a model, selftrain.ctc_model "
            "finetune or auto)")


def export_hf(model: ModelFolder, out: str | os.PathLike) -> Path:
    """Write the Hugging Face folder `out` (atomically); return it."""
    reason = _not_exportable(model)
    if reason:
        raise W2vuError(reason)
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCTC,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2PhonemeCTCTokenizer,
    )

    from w2vu.selftrain.ctc.transcribe import load_ctc_model

    ctc, record = load_ctc_model(model.path(layout.CTC))
    vocabulary = list(record["vocabulary"])
    settings = {k: v for k, v in record["hf_config"].items()
                if k not in ("model_type", "architectures", "vocab_size", "pad_token_id")}
    config = AutoConfig.for_model(record["model_type"], **settings,
                                  vocab_size=len(vocabulary),
                                  pad_token_id=vocabulary.index(BLANK),
                                  architectures=None)
    hf = AutoModelForCTC.from_config(config).eval()
    base = getattr(hf, hf.base_model_prefix)
    state = ctc.backbone.state_dict()
    if getattr(base, "masked_spec_embed", None) is None:
        state.pop("masked_spec_embed", None)
    base.load_state_dict(state)
    with torch.no_grad():
        hf.lm_head.weight.copy_(ctc.head.weight)
        hf.lm_head.bias.copy_(ctc.head.bias)
    out = Path(out)
    with atomic_dir(out) as tmp:
        hf.save_pretrained(tmp)
        Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=16000, padding_value=0.0,
            do_normalize=bool(record["normalize"]),
            return_attention_mask=config.feat_extract_norm == "layer",
        ).save_pretrained(tmp)
        vocab_file = tmp / "vocab.json"
        vocab_file.write_text(json.dumps({s: i for i, s in enumerate(vocabulary)}, indent=1),
                              encoding="utf-8")
        tokenizer = Wav2Vec2PhonemeCTCTokenizer(
            str(vocab_file), bos_token=BLANK, eos_token="</s>", unk_token="<unk>",
            pad_token=BLANK, phone_delimiter_token=" ", word_delimiter_token=SIL,
            do_phonemize=False)
        tokenizer.save_pretrained(tmp)
        (tmp / "w2vu_model.json").write_text(json.dumps(
            {"exported_from": model.info["system"], "recipe": model.recipe,
             "unsupervised_selection": model.info.get("unsupervised_selection"),
             "scores": model.info.get("scores")}, indent=2) + "\n", encoding="utf-8")
    return out
