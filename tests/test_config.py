from __future__ import annotations

from pathlib import Path

import pytest

from sanitizer.config import CheckConfig, SanitizerConfig, config_from_dict, load_config
from sanitizer.errors import ConfigError

FULL = """
[dataset]
name = "credit"
label_column = "label"
id_columns = ["record_id"]
ignore_columns = ["ingested_at"]
suite = "suites/credit.json"
reference = "/data/reference.parquet"

[columns]
categorical = ["zip"]

[policy]
mode = "rows"
alpha = 0.05
screen_rows = 50000

[suite_generation]
range_margin = 0.5
range_mostly = 0.97

[checks.schema]
severity = "warn"
"""


def test_full_config_is_typed_and_paths_resolve(tmp_path: Path) -> None:
    path = tmp_path / "credit.toml"
    path.write_text(FULL)
    cfg = load_config(path)
    assert cfg.dataset == "credit"
    assert cfg.id_columns == ("record_id",)
    assert cfg.categorical_columns == ("zip",)
    assert cfg.suite_path == tmp_path / "suites/credit.json"
    assert cfg.reference_path == Path("/data/reference.parquet")
    assert cfg.policy.mode == "rows" and cfg.policy.alpha == 0.05
    assert cfg.policy.screen_rows == 50_000
    assert cfg.suite_generation.range_margin == 0.5
    assert cfg.suite_generation.range_mostly == 0.97
    assert cfg.check_config("schema") == CheckConfig(severity="warn")
    assert cfg.check_config("other") == CheckConfig()


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({}, "dataset.label_column"),
        ({"dataset": {"label_column": "y", "colour": 1}}, "dataset.colour"),
        ({"dataset": {"label_column": "y"}, "extra": {}}, "extra"),
        ({"dataset": {"label_column": 3}}, "dataset.label_column"),
        ({"dataset": {"label_column": "y", "id_columns": "a"}}, "dataset.id_columns"),
        ({"dataset": {"label_column": "y"}, "policy": {"mode": "some"}}, "policy.mode"),
        ({"dataset": {"label_column": "y"}, "policy": {"alpha": 2}}, "policy.alpha"),
        ({"dataset": {"label_column": "y"}, "policy": {"alpha": "x"}}, "policy.alpha"),
        ({"dataset": {"label_column": "y"}, "policy": {"screen_rows": 1.5}}, "policy.screen_rows"),
        ({"dataset": {"label_column": "y"}, "policy": {"screen_rows": 10}}, "policy.screen_rows"),
        ({"dataset": {"label_column": "y"}, "checks": {"nope": {}}}, "unknown check 'nope'"),
        ({"dataset": {"label_column": "y"}, "checks": {"schema": {"k": 1}}}, "checks.schema.k"),
        (
            {"dataset": {"label_column": "y"}, "checks": {"schema": {"severity": "x"}}},
            "checks.schema.severity",
        ),
        (
            {"dataset": {"label_column": "y"}, "suite_generation": {"range_margin": -1}},
            "range_margin",
        ),
        (
            {"dataset": {"label_column": "y"}, "suite_generation": {"range_mostly": 1.5}},
            "range_mostly",
        ),
    ],
)
def test_invalid_config_names_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict(raw)


def test_unknown_check_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"valid checks: .*schema"):
        SanitizerConfig(label_column="y", checks={"nope": CheckConfig()})


def test_label_cannot_be_typed_as_feature() -> None:
    with pytest.raises(ConfigError, match="cannot be typed as a feature"):
        SanitizerConfig(label_column="y", numeric_columns=("y",))
    with pytest.raises(ConfigError, match="both numeric and categorical"):
        SanitizerConfig(label_column="y", numeric_columns=("a",), categorical_columns=("a",))


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[dataset\nlabel_column=")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


OPERATIONS = """
[dataset]
label_column = "label"

[airflow]
schedule = "*/15 * * * *"
review_timeout_hours = 2
review_assignees = ["alice"]

[alerts]
email_to = ["ops@example.com"]
from_email = "sanitizer@example.com"
notifier = "airflow.providers.slack.notifications.slack:SlackNotifier"
notifier_kwargs = { slack_conn_id = "slack", channel = "#data" }

[training]
holdout = "holdout.csv"
models_root = "models"
tolerance = 0.02
"""


def test_operations_sections(tmp_path: Path) -> None:
    (tmp_path / "ops.toml").write_text(OPERATIONS)
    cfg = load_config(tmp_path / "ops.toml")
    assert cfg.airflow.schedule == "*/15 * * * *" and cfg.airflow.review_timeout_hours == 2
    assert cfg.airflow.review_assignees == ("alice",)
    assert cfg.alerts.enabled and cfg.alerts.email_to == ("ops@example.com",)
    assert cfg.alerts.notifier_kwargs == {"slack_conn_id": "slack", "channel": "#data"}
    assert cfg.training.holdout_path == tmp_path / "holdout.csv"
    assert cfg.training.models_root == str((tmp_path / "models").resolve())
    defaults = config_from_dict({"dataset": {"label_column": "y"}})
    assert defaults.airflow.schedule == "@hourly" and not defaults.alerts.enabled
    assert defaults.training.enabled and defaults.training.tolerance == 0.01


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"airflow": {"schedule": ""}}, "airflow.schedule"),
        ({"airflow": {"review_timeout_hours": 0}}, "airflow.review_timeout_hours"),
        ({"airflow": {"sched": "x"}}, "airflow.sched"),
        ({"alerts": {"notifier": "not a path!"}}, "alerts.notifier"),
        ({"alerts": {"email_to": "a@b"}}, "alerts.email_to"),
        ({"training": {"tolerance": 2}}, "training.tolerance"),
        ({"training": {"holdout_fraction": 0}}, "training.holdout_fraction"),
    ],
)
def test_invalid_operations_keys(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict({"dataset": {"label_column": "y"}, **raw})
