"""Text side: normalisation, phonemisation, lexicon, LMs and graphs."""
