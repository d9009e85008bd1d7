"""Special token ids shared by every vocabulary (word or BPE) and every model.

Kept free of torch: the prepare stage imports it.
"""
PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")  # their strings; index == id
