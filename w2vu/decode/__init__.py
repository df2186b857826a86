"""WFST decoding of generator emissions over the HLG graphs (reference section 3.3)."""
