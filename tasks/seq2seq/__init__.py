"""Sequence-to-sequence translation with attention: model-free decoding (greedy, beam search)."""
