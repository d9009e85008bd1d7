import numpy as np

from pipeline.data.ragged import RaggedArray, RaggedWriter


def test_round_trip_with_empty_sentences(tmp_path):
    sentences = [np.arange(n, dtype=np.int32) + n for n in (3, 0, 5, 1, 0)]
    writer = RaggedWriter(tmp_path, "src")
    for ids in sentences:
        writer.append(ids)
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.ids.npy", "src.offsets.npy"]
    ragged = RaggedArray(tmp_path, "src")
    assert len(ragged) == 5 and ragged.lengths.tolist() == [3, 0, 5, 1, 0]
    for i, ids in enumerate(sentences):
        assert ragged[i].tolist() == ids.tolist()


def test_empty_stream(tmp_path):
    RaggedWriter(tmp_path, "tgt").close()
    assert len(RaggedArray(tmp_path, "tgt")) == 0
