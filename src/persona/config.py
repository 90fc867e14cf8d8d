"""Every setting persona reads, declared once with its default and help.

Values come from, in order of precedence: command-line options, environment variables
(`PERSONA_<NAME>`), the YAML config file (`persona.yaml` in the data directory, or
`PERSONA_CONFIG`), then the defaults below. The config file also holds structured
configuration (identity rules, how recommendations train) that does not fit in an
environment variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import msgspec
import yaml

from persona.activation.guards import GuardSettings, parse_guard_settings
from persona.errors import ConfigError
from persona.identity.rules import IdentityRules
from persona.recommend.settings import TrainingSettings


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    cast: type = str


SETTINGS = [
    Setting("data_dir", "persona-data", "Directory of the embedded store (log.db, state.db, persona.yaml)."),
    Setting("store", None,
            "Where events and state live: sqlite:///DIR (the embedded store; default sqlite:///<data_dir>) or "
            "postgresql://user@host:5432/db?schema=NAME (several API nodes and workers share it)."),
    Setting("host", "127.0.0.1", "Interface the HTTP server binds to."),
    Setting("port", 8000, "Port the HTTP server listens on.", int),
    Setting("write_key", None, "Seeds a write key for the source 'default' on start (for scripts and tests)."),
    Setting("secret_key", None, "Seeds a secret key (read and admin access) on start."),
    Setting("config", None, "Path of the YAML config file; defaults to <data_dir>/persona.yaml if present."),
    Setting("synchronous", "FULL",
            "SQLite synchronous mode of the event log: FULL fsyncs every commit (survives power loss), "
            "NORMAL survives a process crash only."),
    Setting("batch_size", 2000, "Events the processor reads and resolves at a time.", int),
    Setting("commit_interval", 0.25,
            "Seconds between the processor's commits of profiles and checkpoint; a profile touched many "
            "times in that window is written once. Profile reads lag ingest by about this much.", float),
    Setting("partitions", 8,
            "Fold partitions of the processor: how many workers can share profile folding. Fixed when the "
            "state is first built; changing it takes `persona rebuild`.", int),
    Setting("processor", "process",
            "Where `persona serve` runs the stream processor: 'process' (a child process, its own CPU core), "
            "'thread' (inside the server process) or 'off' (another process such as a second serve does it)."),
    Setting("ready_max_lag", 100_000,
            "GET /readyz answers 503 while more events than this wait to be processed (0: never for lag).", int),
    Setting("definitions", None,
            "YAML file of segments and computed traits that `persona serve` applies on start (definitions as "
            "code; `persona segments apply FILE` applies it again while it runs)."),
    Setting("placements", None,
            "YAML file of recommendation placements (`placement name -> rules`: stock, categories, brands, "
            "price, diversity, purchases, boost/bury), read on start and on SIGHUP; a request names one with "
            "`placement`."),
    Setting("destinations", None,
            "YAML file of webhook destinations (`name -> url, secret or secret_env, timeout, max_concurrency, "
            "max_attempts, backoff_base, backoff_max`) that journeys' `send: {webhook: NAME}` steps deliver to; "
            "read on start."),
    Setting("smtp_host", None, "SMTP server journeys' email steps are sent through; none: email steps are "
                               "recorded and refused (`no SMTP server configured`)."),
    Setting("smtp_port", 587, "SMTP port.", int),
    Setting("smtp_security", "starttls", "none, starttls (port 587) or ssl (implicit TLS, port 465)."),
    Setting("smtp_username", None, "SMTP login, if the server wants one."),
    Setting("smtp_password", None, "SMTP password (better in the environment than in the config file)."),
    Setting("smtp_from", "persona@localhost", "The From address of emails."),
    Setting("segment_time_check", 60.0,
            "Seconds between the audience stage's looks for profiles whose segments change with time alone "
            "(`no purchase in 90 days` becoming true): the most such a transition is announced late.", float),
    Setting("rfm_refresh", 3600.0,
            "Seconds between refreshes of the RFM model traits (rfm_r, rfm_segment, ...) by the processing "
            "runners (`persona serve`, `persona worker`); one runner does each refresh.", float),
    Setting("personas_refit", 86400.0,
            "Seconds between refits of the clustering personas (the `persona` model trait, and a report kept "
            "with the run: `persona personas show --report FILE`), like rfm_refresh.", float),
    Setting("recs_retrain", 86400.0,
            "Seconds between trainings of the recommendation models (what `persona recs train` does), like "
            "rfm_refresh; a training waits until the log has product events and processing keeps up. "
            "0 turns it off (train with `persona recs train` only).", float),
    Setting("models_refresh", 3600.0,
            "Seconds between refreshes of the predictive scores (lifetime value, purchase propensity, churn) by "
            "the processing runners, each with its model's active version, like rfm_refresh.", float),
    Setting("churn_days", 60,
            "The churn model's horizon: a customer churns who does not order (or, with churn_on activity, do "
            "anything) in the next this many days. Training needs twice that much history.", int),
    Setting("churn_on", "order", "What keeps a customer from churning: an `order`, or any `activity`."),
    Setting("models_retrain", 86400.0,
            "Seconds after which a refresh first trains a new version of a predictive model (and activates it), "
            "unless an older version was activated by hand (a rollback pins it). 0: train only by hand "
            "(`persona models train`).", float),
    Setting("journey_lateness", 2.0,
            "Seconds a journey's timer waits past its deadline for events that happened before it but arrive "
            "late (an `Order Completed` inside the 15 minutes, received a moment after): how late a timer fires "
            "at most, beyond the stage's polling.", float),
    Setting("log_level", "INFO", "Logging level: DEBUG, INFO, WARNING or ERROR."),
]
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("persona-data")
    store: str | None = None  # a PostgreSQL URL; None: the embedded store in data_dir
    host: str = "127.0.0.1"
    port: int = 8000
    write_key: str | None = None
    secret_key: str | None = None
    config: Path | None = None
    synchronous: str = "FULL"
    batch_size: int = 2000
    commit_interval: float = 0.25
    partitions: int = 8
    processor: str = "process"
    ready_max_lag: int = 100_000
    definitions: Path | None = None
    placements: Path | None = None
    destinations: Path | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "persona@localhost"
    segment_time_check: float = 60.0
    rfm_refresh: float = 3600.0
    personas_refit: float = 86400.0
    recs_retrain: float = 86400.0  # 0: off
    models_refresh: float = 3600.0
    churn_days: int = 60
    churn_on: str = "order"
    models_retrain: float = 86400.0  # 0: by hand only
    journey_lateness: float = 2.0
    log_level: str = "INFO"
    identity: IdentityRules = field(default_factory=IdentityRules)
    recommendations: TrainingSettings = field(default_factory=TrainingSettings)
    guards: GuardSettings = field(default_factory=GuardSettings)  # the file's `messaging:` section

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{self.data_dir}"

    def with_overrides(self, **values: Any) -> Config:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


class _FileConfig(msgspec.Struct, forbid_unknown_fields=True):
    identity: IdentityRules | None = None
    recommendations: TrainingSettings | None = None
    messaging: dict[str, Any] | None = None
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


def _cast(setting: Setting, raw: Any) -> Any:
    if raw is None:
        return None
    try:
        return setting.cast(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {setting.name} must be {setting.cast.__name__}, got {raw!r}",
                          field=setting.name) from None


def load_config(env: dict[str, str] | None = None, **overrides: Any) -> Config:
    """Build the configuration from overrides, environment, config file and defaults."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    from_env = {s.name: _cast(s, env[f"PERSONA_{s.name.upper()}"])
                for s in SETTINGS if f"PERSONA_{s.name.upper()}" in env}
    given = {k: v for k, v in overrides.items() if v is not None}
    data_dir = Path(given.get("data_dir") or from_env.get("data_dir") or values["data_dir"])
    config_path = given.get("config") or from_env.get("config")
    path = Path(config_path) if config_path else data_dir / "persona.yaml"
    file_config = _read_file(path, required=config_path is not None)
    for name, raw in file_config.settings.items():
        if name not in _BY_NAME:
            raise ConfigError(f"{path}: unknown setting {name!r}", field=f"settings.{name}")
        values[name] = _cast(_BY_NAME[name], raw)
    values.update(from_env)
    values.update(given)
    values["data_dir"] = Path(values["data_dir"])
    values["definitions"] = Path(values["definitions"]) if values["definitions"] else None
    values["placements"] = Path(values["placements"]) if values["placements"] else None
    values["destinations"] = Path(values["destinations"]) if values["destinations"] else None
    values["store"], values["data_dir"] = _store(values["store"], values["data_dir"])
    values["config"] = path if path.exists() else None
    if str(values["synchronous"]).upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise ConfigError("synchronous must be FULL, NORMAL or EXTRA", field="synchronous")
    values["synchronous"] = str(values["synchronous"]).upper()
    if not 1 <= values["partitions"] <= 1024:
        raise ConfigError("partitions must be between 1 and 1024", field="partitions")
    if values["processor"] not in ("process", "thread", "off"):
        raise ConfigError("processor must be process, thread or off", field="processor")
    if values["segment_time_check"] <= 0:
        raise ConfigError("segment_time_check must be more than 0 seconds", field="segment_time_check")
    for name in ("rfm_refresh", "personas_refit", "models_refresh"):
        if values[name] <= 0:
            raise ConfigError(f"{name} must be more than 0 seconds", field=name)
    if values["smtp_security"] not in ("none", "starttls", "ssl"):
        raise ConfigError("smtp_security must be none, starttls or ssl", field="smtp_security")
    if values["journey_lateness"] < 0:
        raise ConfigError("journey_lateness must be 0 or more seconds", field="journey_lateness")
    if values["churn_on"] not in ("order", "activity"):
        raise ConfigError("churn_on must be order or activity", field="churn_on")
    if not 1 <= values["churn_days"] <= 730:
        raise ConfigError("churn_days must be between 1 and 730", field="churn_days")
    if values["models_retrain"] < 0:
        raise ConfigError("models_retrain must be 0 (by hand) or more seconds", field="models_retrain")
    if values["recs_retrain"] < 0:
        raise ConfigError("recs_retrain must be 0 (off) or more seconds", field="recs_retrain")
    names = {f.name for f in fields(Config)}
    config = Config(**{k: v for k, v in values.items() if k in names})
    if file_config.identity is not None:
        config = replace(config, identity=file_config.identity)
    if file_config.recommendations is not None:
        config = replace(config, recommendations=file_config.recommendations)
    if file_config.messaging is not None:
        try:
            config = replace(config, guards=parse_guard_settings(file_config.messaging))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}", field=exc.field) from None
    return config


def _store(url: str | None, data_dir: Path) -> tuple[str | None, Path]:
    """A PostgreSQL URL (None for the embedded store), and the data directory a sqlite:/// URL names."""
    if not url:
        return None, data_dir
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite" and sep and rest.startswith("/") and len(rest) > 1:
        return None, Path(rest[1:])
    if scheme in ("postgresql", "postgres") and sep:
        return url, data_dir
    raise ConfigError(f"store {url!r} is not sqlite:///DIR or postgresql://user@host/db", field="store")


def _read_file(path: Path, *, required: bool) -> _FileConfig:
    if not path.exists():
        if required:
            raise ConfigError(f"config file {path} does not exist", field="config")
        return _FileConfig()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return msgspec.convert(raw, _FileConfig)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", field="config") from None
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}", field="config") from None
