"""Model names of docs/architecture.md (Models) (``<family>-<cell>``) -> modules, and the lists config validation needs.

    lm-<cell>         RNNLanguageModel   (target side only: src_vocab is not used)
    rnnenc-<cell>     RNNEncoderDecoder  (Cho et al. 2014)
    rnnsearch-<cell>  RNNSearch          (Bahdanau et al. 2014)
"""

from torch import nn

from models.cells import CELLS
from models.language_model import RNNLanguageModel
from models.rnnenc import RNNEncoderDecoder
from models.rnnsearch import RNNSearch

FAMILIES = ("lm", "rnnenc", "rnnsearch")
MODEL_NAMES = tuple(f"{family}-{cell}" for family in FAMILIES for cell in CELLS)
# Size arguments each family takes. One config section may hold all of them: a family ignores
# the sizes it has no use for (an LM has no maxout layer), but an unknown key is an error.
FAMILY_SIZES = {
    "lm": ("emb_size", "hidden_size", "num_layers", "dropout", "cond_size"),
    "rnnenc": ("emb_size", "hidden_size", "maxout_size", "num_layers", "dropout"),
    "rnnsearch": ("emb_size", "hidden_size", "maxout_size", "attention_size", "num_layers", "dropout"),
}
SIZE_KEYS = tuple(dict.fromkeys(key for keys in FAMILY_SIZES.values() for key in keys))


def parse_model_name(name: str) -> tuple[str, str]:
    """'rnnsearch-gru' -> ('rnnsearch', 'gru'); ValueError naming the allowed names otherwise."""
    family, _, cell = name.partition("-")
    if family not in FAMILIES or cell not in CELLS:
        raise ValueError(f"unknown model name {name!r}; allowed: {', '.join(MODEL_NAMES)}")
    return family, cell


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


def task_class(name: str):
    """The LightningModule that trains model ``name``: a language model or a translation task."""
    family, _ = parse_model_name(name)
    if family == "lm":
        from models.language_model_task import LanguageModelTask

        return LanguageModelTask
    from models.translation_task import TranslationTask

    return TranslationTask
