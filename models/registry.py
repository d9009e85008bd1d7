"""Model names (``<family>-<cell>``, models/names.py) -> the nn.Module that implements them.

    lm-<cell>         RNNLanguageModel   (target side only: src_vocab is not used)
    rnnenc-<cell>     RNNEncoderDecoder  (Cho et al. 2014)
    rnnsearch-<cell>  RNNSearch          (Bahdanau et al. 2014)
"""

from torch import nn

from models.language_model import RNNLanguageModel
from models.names import parse_model_name
from models.rnnenc import RNNEncoderDecoder
from models.rnnsearch import RNNSearch

# Size arguments each family takes. One config section may hold all of them: a family ignores
# the sizes it has no use for (an LM has no maxout layer), but an unknown key is an error.
FAMILY_SIZES = {
    "lm": ("emb_size", "hidden_size", "num_layers", "dropout", "cond_size"),
    "rnnenc": ("emb_size", "hidden_size", "maxout_size", "num_layers", "dropout", "context_size", "reverse_source",
               "bidirectional"),
    "rnnsearch": ("emb_size", "hidden_size", "maxout_size", "attention_size", "num_layers", "dropout"),
}
SIZE_KEYS = tuple(dict.fromkeys(key for keys in FAMILY_SIZES.values() for key in keys))


def build_model(name: str, src_vocab: int, tgt_vocab: int, **sizes) -> nn.Module:
    family, cell = parse_model_name(name)
    unknown = sorted(set(sizes) - set(SIZE_KEYS))
    if unknown:
        raise ValueError(f"unknown size argument(s) {', '.join(unknown)}; allowed: {', '.join(SIZE_KEYS)}")
    kwargs = {key: value for key, value in sizes.items() if key in FAMILY_SIZES[family]}
    if family == "lm":
        return RNNLanguageModel(tgt_vocab, cell, **kwargs)
    if family == "rnnenc":
        return RNNEncoderDecoder(src_vocab, tgt_vocab, cell, **kwargs)
    return RNNSearch(src_vocab, tgt_vocab, cell, **kwargs)
