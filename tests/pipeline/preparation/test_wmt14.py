"""The WMT'14 loader on a local fixture in the hub's layout (no network in tests)."""
import json

import pyarrow as pa
import pyarrow.parquet as pq

from tests.pipeline.helpers import assert_one_line_error, run_stage, sentence_pairs, write_params


def write_hub_layout(directory, split, pairs):
    rows = [{"en": src, "fr": tgt} for src, tgt in pairs]
    pq.write_table(pa.table({"translation": rows}), directory / f"{split}-00000-of-00001.parquet")


def test_predefined_splits_are_kept(project):
    data = project / "wmt14"
    data.mkdir()
    pairs = sentence_pairs(300)
    write_hub_layout(data, "train", pairs[:200])
    write_hub_layout(data, "validation", pairs[200:230])
    write_hub_layout(data, "test", pairs[230:])
    write_params(project, source="wmt14", wmt14={"data_dir": str(data), "max_train_pairs": 150}, workers=1,
                 clean={"max_len": 80})
    result = run_stage(project, "prepare")
    assert result.returncode == 0, result.stderr
    stats = json.loads((project / "data/prepared/stats.json").read_text())
    assert stats["pairs"] == {"train": 150, "dev": 30, "test": 70}
    keys = (project / "data/prepared/test/keys.txt").read_text().split()
    assert keys[0] == "test:0" and keys[-1] == "test:69"


def test_missing_split_files(project):
    (project / "wmt14").mkdir()
    write_params(project, source="wmt14", wmt14={"data_dir": "wmt14"})
    assert_one_line_error(run_stage(project, "prepare"), "no train-*.parquet files", "prepare.wmt14.data_dir")


def test_language_must_belong_to_the_config(project):
    write_params(project, source="wmt14", tgt_lang="de")
    assert_one_line_error(run_stage(project, "prepare"), "prepare.tgt_lang: 'de'", exit_code=2)
