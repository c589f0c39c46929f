"""The generated argparse interface: defaults, booleans, optional paths, YAML overrides."""

import dataclasses

import pytest
import yaml

from vsfusion.config import (
    FusionConfig,
    GeneratorConfig,
    ReproduceConfig,
    SensorConfig,
    VideoConfig,
    build_parser,
    config_to_yaml,
    parse_config,
)

ALL = (VideoConfig, SensorConfig, GeneratorConfig, FusionConfig, ReproduceConfig)


@pytest.mark.parametrize("cls", ALL)
def test_defaults_round_trip_through_yaml(cls, tmp_path):
    cfg = parse_config(cls, [])
    path = tmp_path / "run.yaml"
    data = yaml.safe_load(config_to_yaml(cfg))
    assert data.pop("stage") == cls.stage
    path.write_text(yaml.safe_dump(data))
    assert parse_config(cls, ["--config", str(path)]) == cfg


def test_a_runs_own_config_yaml_re_runs_it_and_another_stages_is_refused(tmp_path):
    cfg = parse_config(FusionConfig, ["--dataset", "demo", "--oof", "a,b", "--seed", "3"])
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(cfg))  # as a run writes it, "stage: fusion" first
    assert parse_config(FusionConfig, ["--config", str(path)]) == cfg
    assert parse_config(FusionConfig, ["--config", str(path), "--oof", "none"]).oof is None
    with pytest.raises(SystemExit, match="configuration of a fusion run, not of a sensor run"):
        parse_config(SensorConfig, ["--config", str(path)])


def test_original_flag_names_are_kept():
    cfg = parse_config(VideoConfig, ["--dataset", "demo", "--batch_size", "4", "--epoch", "5"])
    assert (cfg.dataset, cfg.batch_size, cfg.epoch) == ("demo", 4, 5)


def test_booleans_are_real_booleans():
    assert parse_config(VideoConfig, []).flip is True
    assert parse_config(VideoConfig, ["--no-flip"]).flip is False
    assert parse_config(VideoConfig, ["--flip"]).flip is True
    with pytest.raises(SystemExit):  # "--flip False" is not accepted as a value
        parse_config(VideoConfig, ["--flip", "False"])


@pytest.mark.parametrize(
    "argv", [["--pretrain", "none"], ["--pretrain", "None"], ["--no-pretrain"], []]
)
def test_pretrain_none_means_no_pretraining(argv):
    assert parse_config(VideoConfig, argv).pretrain is None


def test_pretrain_path_is_kept():
    assert parse_config(VideoConfig, ["--pretrain", "w.h5"]).pretrain == "w.h5"


def test_command_line_beats_yaml_beats_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epoch: 7\nlr: 0.5\n")
    cfg = parse_config(SensorConfig, ["--config", str(path), "--lr", "0.1"])
    assert (cfg.epoch, cfg.lr) == (7, 0.1)


def test_unknown_yaml_key_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 7\n")
    with pytest.raises(SystemExit, match="unknown options \\['epochs'\\]"):
        parse_config(SensorConfig, ["--config", str(path)])


def test_missing_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        parse_config(SensorConfig, ["--config", str(tmp_path / "nope.yaml")])


def test_choices_are_enforced():
    with pytest.raises(SystemExit):
        parse_config(GeneratorConfig, ["--trunk", "both"])


@pytest.mark.parametrize("cls", ALL)
def test_every_field_has_help(cls):
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
    assert build_parser(cls).format_help()


def test_a_bad_command_line_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_config(VideoConfig, ["--backbone", "vgg"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1
    assert err[0].startswith("error: argument --backbone: invalid choice: 'vgg'")
