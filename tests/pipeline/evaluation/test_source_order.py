"""The source-order reference: each target word order of the controlled task undone exactly."""
import pytest

from pipeline.evaluation.source_order import UNDO, source_order_references
from pipeline.preparation.sources.synthetic import ORDERS


@pytest.mark.parametrize("order", sorted(ORDERS))
@pytest.mark.parametrize("length", range(0, 8))
def test_every_target_order_is_undone(order, length):
    words = [f"w{i}" for i in range(length)]
    assert UNDO[order](ORDERS[order](words)) == words


def test_undo_covers_every_order_the_generator_has():
    assert set(UNDO) == set(ORDERS)


def test_references_back_in_source_order():
    assert source_order_references(["b a d c e", ""], "swap_adjacent") == ["a b c d e", ""]
    assert source_order_references(["c d e a b"], "swap_halves") == ["a b c d e"]
