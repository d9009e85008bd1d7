import pytest

from models.cells import CELLS
from models.language_model import RNNLanguageModel
from models.names import FAMILIES, MODEL_NAMES, parse_model_name
from models.registry import SIZE_KEYS, build_model
from models.rnnenc import RNNEncoderDecoder
from models.rnnsearch import RNNSearch


def test_names_cover_every_family_and_cell():
    assert FAMILIES == ("lm", "rnnenc", "rnnsearch")
    assert CELLS == ("rnn", "lstm", "gru", "jordan")
    assert len(MODEL_NAMES) == 12 and "rnnsearch-jordan" in MODEL_NAMES
    assert parse_model_name("rnnenc-lstm") == ("rnnenc", "lstm")


@pytest.mark.parametrize("bad", ["rnnsearch-elman", "transformer-gru", "lm", "", "RNNsearch-gru", "lm-gru-2"])
def test_bad_name_names_the_allowed_ones(bad):
    with pytest.raises(ValueError) as error:
        build_model(bad, 10, 10)
    assert repr(bad) in str(error.value)
    assert "lm-rnn" in str(error.value) and "rnnsearch-jordan" in str(error.value)


def test_families_and_sizes():
    sizes = dict(emb_size=4, hidden_size=6, maxout_size=3, attention_size=5, num_layers=2, dropout=0.1)
    assert isinstance(build_model("lm-jordan", 10, 11, **sizes), RNNLanguageModel)  # ignores maxout/attention
    enc = build_model("rnnenc-gru", 10, 11, **sizes)
    search = build_model("rnnsearch-lstm", 10, 11, **sizes)
    assert isinstance(enc, RNNEncoderDecoder) and isinstance(search, RNNSearch)
    assert search.attention.W.out_features == 5 and search.output.maxout_size == 3
    assert enc.src_embed.num_embeddings == 10 and enc.tgt_embed.num_embeddings == 11
    assert set(sizes) <= set(SIZE_KEYS)
    with pytest.raises(ValueError, match="hiden_size"):
        build_model("rnnenc-gru", 10, 11, hiden_size=4)
