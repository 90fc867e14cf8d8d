"""Settings: precedence, file config, clear errors; every setting documented."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from persona.activation.guards import FrequencyCap, GuardSettings, QuietHours
from persona.config import SETTINGS, load_config
from persona.errors import ConfigError
from persona.recommend.settings import InteractionWeights, TrainingSettings

ROOT = Path(__file__).resolve().parents[2]


def test_precedence_override_env_file_default(tmp_path: Path) -> None:
    (tmp_path / "persona.yaml").write_text("settings:\n  port: 9001\n  batch_size: 10\n")
    env = {"PERSONA_DATA_DIR": str(tmp_path), "PERSONA_PORT": "9002"}
    assert load_config(env=env).port == 9002
    assert load_config(env=env).batch_size == 10
    assert load_config(env=env, port=9003).port == 9003
    assert load_config(env={}).port == 8000


def test_identity_rules_from_file(tmp_path: Path) -> None:
    (tmp_path / "persona.yaml").write_text(
        "identity:\n  identifiers:\n    - {kind: user_id, paths: [userId], limit: 1}\n"
        "    - {kind: crm_id, paths: [traits.crm_id, context.traits.crm_id], limit: 1}\n"
        "  blocked_values: ['none']\n")
    rules = load_config(env={}, data_dir=tmp_path).identity
    assert rules.kinds == ["user_id", "crm_id"]
    assert rules.normalize("user_id", "none") is None


@pytest.mark.parametrize(("text", "words"), [
    ("settings:\n  port: abc\n", "port"),
    ("settings:\n  colour: blue\n", "colour"),
    ("identity:\n  identifiers: [{kind: user_id, paths: [userId], limit: 0}]\n", "limit"),
    ("identity:\n  identifers: []\n", "identifers"),
    ("settings: [unclosed\n", "YAML"),
    ("recommendations:\n  weights: {half_life_days: 0}\n", "recommendations.weights"),
    ("recommendations:\n  weights: {veiw: 2}\n", "veiw"),
    ("recommendations:\n  validation_days: -1\n", "validation_days"),
    ("messaging:\n  frequency_caps: [{channel: marketing, max: 2, per: daily}]\n", "daily"),
    ("messaging:\n  frequency_caps: [{channel: marketing, max: -1, per: 1d}]\n", "whole number"),
    ("messaging:\n  quiet_hours: {start: '25:00'}\n", "time of day"),
    ("messaging:\n  quiet_hours: {start: '08:00', end: '08:00'}\n", "different times"),
    ("messaging:\n  default_timezone: Mars/Olympus\n", "IANA"),
    ("messaging:\n  caps: []\n", "caps"),
])
def test_bad_config_names_the_field(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "persona.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(env={}, data_dir=tmp_path)
    assert words in err.value.message


def test_how_recommendations_train_comes_from_the_file(tmp_path: Path) -> None:
    assert load_config(env={}, data_dir=tmp_path).recommendations == TrainingSettings()
    (tmp_path / "persona.yaml").write_text(
        "recommendations:\n  weights: {view: 0.5, purchase: 8, half_life_days: 14}\n  tune: false\n")
    settings = load_config(env={}, data_dir=tmp_path).recommendations
    assert settings.weights == InteractionWeights(view=0.5, purchase=8, half_life_days=14)
    assert settings.tune is False and settings.validation_days == 7


def test_message_guards_come_from_the_file(tmp_path: Path) -> None:
    assert load_config(env={}, data_dir=tmp_path).guards == GuardSettings()
    (tmp_path / "persona.yaml").write_text(
        "messaging:\n  frequency_caps:\n    - {channel: marketing, max: 3, per: 1w}\n"
        "    - {channel: sms, max: 1, per: 12h}\n  quiet_hours: {start: '22:30', end: '07:00', channels: [sms]}\n"
        "  default_timezone: Europe/Paris\n")
    guards = load_config(env={}, data_dir=tmp_path).guards
    assert guards.caps == (FrequencyCap("marketing", 3, 7 * 86_400.0), FrequencyCap("sms", 1, 12 * 3600.0))
    assert guards.quiet_hours == QuietHours(time(22, 30), time(7, 0), frozenset({"sms"}))
    assert guards.default_timezone == "Europe/Paris"
    (tmp_path / "persona.yaml").write_text("messaging:\n  frequency_caps: []\n  quiet_hours: null\n")
    assert load_config(env={}, data_dir=tmp_path).guards == GuardSettings((), None)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(env={}, config=str(tmp_path / "nope.yaml"))


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    for setting in SETTINGS:
        assert f"PERSONA_{setting.name.upper()}" in docs, setting.name


def test_a_store_url_must_be_sqlite_or_postgresql() -> None:
    with pytest.raises(ConfigError, match="postgresql://") as caught:
        load_config(env={"PERSONA_STORE": "mysql://localhost/db"})
    assert caught.value.field == "store"
    assert load_config(env={"PERSONA_STORE": "postgresql://h/db"}).store == "postgresql://h/db"
