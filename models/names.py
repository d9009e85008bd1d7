"""Model names (``<family>-<cell>``, docs/architecture.md, Models) and the one check of a name.

Kept free of torch: params.yaml's validation imports it before any stage loads a model.
"""

FAMILIES = ("lm", "rnnenc", "rnnsearch")
CELLS = ("rnn", "lstm", "gru", "jordan")
MODEL_NAMES = tuple(f"{family}-{cell}" for family in FAMILIES for cell in CELLS)


def parse_model_name(name: str) -> tuple[str, str]:
    """'rnnsearch-gru' -> ('rnnsearch', 'gru'); a ValueError naming the allowed names otherwise."""
    family, _, cell = name.partition("-")
    if family not in FAMILIES or cell not in CELLS:
        raise ValueError(f"unknown model {name!r} (allowed: {', '.join(MODEL_NAMES)})")
    return family, cell
