"""The generated argparse interface: defaults, booleans, optional paths, YAML overrides."""

import dataclasses

import pytest
import yaml

from vsfusion.config import (
    ConfigError,
    FusionConfig,
    GeneratorConfig,
    PretrainConfig,
    ReproduceConfig,
    SensorConfig,
    SensorTuneConfig,
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
    with pytest.raises(ConfigError, match="configuration of a fusion run, not of a sensor run"):
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
    with pytest.raises(ConfigError, match="unknown options \\['epochs'\\]"):
        parse_config(SensorConfig, ["--config", str(path)])


def test_missing_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse_config(SensorConfig, ["--config", str(tmp_path / "nope.yaml")])


def test_yaml_values_get_the_fields_types(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "lr: 1e-4\n"  # YAML 1.1 reads this as the string '1e-4'
        "epoch: '7'\n"
        "val_fraction: 1\n"
        "sensor_steps: '64'\n"
        "unit_channels: none\n"
        "run_name: 123\n"
        "subjects: null\n"
        "augment: 'no'\n"
        "stats: yes\n"
        "final_fit: 'True'\n"
    )
    cfg = parse_config(SensorConfig, ["--config", str(path)])
    assert cfg.lr == 1e-4 and type(cfg.lr) is float
    assert (cfg.epoch, cfg.val_fraction, cfg.sensor_steps) == (7, 1.0, 64)
    assert type(cfg.val_fraction) is float and type(cfg.sensor_steps) is int
    assert (cfg.unit_channels, cfg.run_name, cfg.subjects) == (None, "123", None)
    assert (cfg.augment, cfg.stats, cfg.final_fit) == (False, True, True)


def test_yaml_optional_bool_and_choices(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("final_fit: null\npreset: paper\n")
    cfg = parse_config(ReproduceConfig, ["--config", str(path)])
    assert cfg.final_fit is None and cfg.preset == "paper"
    path.write_text("video_crop: none\nwarmup_epochs: '2'\n")
    cfg = parse_config(PretrainConfig, ["--config", str(path)])
    assert cfg.video_crop is None and cfg.warmup_epochs == 2.0


@pytest.mark.parametrize(
    "line,message",
    [
        ("lr: fast", "option lr: 'fast' is not a valid float"),
        ("epoch: 2.5", "option epoch: 2.5 is not a valid int"),
        ("epoch: true", "option epoch: True is not a valid int"),
        ("epoch: null", "option epoch: None is not a valid int"),
        ("sensor_steps: many", "option sensor_steps: 'many' is not a valid int or none"),
        ("augment: maybe", "option augment: 'maybe' is not a valid bool"),
        ("augment: 2", "option augment: 2 is not a valid bool"),
        ("dataset: [a, b]", "option dataset: ['a', 'b'] is not a valid str"),
        ("schedule: linear", "option schedule: 'linear' is not one of constant, cosine"),
    ],
)
def test_a_bad_yaml_value_is_one_line_naming_file_key_value_and_type(tmp_path, line, message):
    path = tmp_path / "run.yaml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError) as exc:
        parse_config(SensorConfig, ["--config", str(path)])
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"{path}: ") and message in text, text


def test_not_a_mapping_and_bad_yaml_are_config_errors(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("- lr\n- epoch\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        parse_config(SensorConfig, ["--config", str(path)])
    path.write_text("lr: [1\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        parse_config(SensorConfig, ["--config", str(path)])


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


def test_a_search_config_takes_the_tuned_stages_yaml_but_not_another_stages(tmp_path):
    """tune.py --stage sensor --config best.yaml starts from a sensor config; a video one is refused."""
    sensor = tmp_path / "best.yaml"
    sensor.write_text(config_to_yaml(SensorConfig(lr=3.2e-05, dropout=0.25)))
    cfg = parse_config(SensorTuneConfig, ["--config", str(sensor), "--trials", "4"])
    assert (cfg.lr, cfg.dropout, cfg.trials, cfg.tuner) == (3.2e-05, 0.25, 4, "random")
    video = tmp_path / "video.yaml"
    video.write_text(config_to_yaml(VideoConfig()))
    with pytest.raises(ConfigError, match="video run, not of a tune_sensor run"):
        parse_config(SensorTuneConfig, ["--config", str(video)])


def test_a_positional_field_is_the_command_lines_bare_argument(tmp_path):
    from vsfusion.config import PredictConfig

    cfg = parse_config(PredictConfig, ["clip.mp4", "--model", "run", "--top-k", "3"])
    assert (cfg.input, cfg.model, cfg.top_k, cfg.sensor) == ("clip.mp4", "run", 3, None)
    assert parse_config(PredictConfig, ["--model_path", "run"]).input is None
    path = tmp_path / "p.yaml"
    path.write_text("input: videos/\nmodel: run\n")
    assert parse_config(PredictConfig, ["--config", str(path)]).input == "videos/"
    assert parse_config(PredictConfig, ["--config", str(path), "0"]).input == "0"
