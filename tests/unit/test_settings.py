"""Settings: defaults that run out of the box, environment overrides, client kwargs."""

from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError

from streams.settings import Settings, load


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(__import__("os").environ):
        if k.startswith("FRICTIONWATCH_"):
            monkeypatch.delenv(k)
    s = load()
    assert s.bootstrap_servers is None  # -> embedded broker
    assert s.kafka_client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert s.broker_session_timeout >= 6  # Kafka's group.min.session.timeout.ms


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRICTIONWATCH_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("FRICTIONWATCH_PARTITIONS", "12")
    s = load(partitions=None, web_port=7000)  # None means "not given on the command line"
    assert s.bootstrap_list == ["k1:9092", "k2:9092"]
    assert (s.partitions, s.web_port) == (12, 7000)
    assert load(bootstrap_servers="other:1").bootstrap_servers == "other:1"


def test_triage_queues_come_as_json_and_reach_a_worker_subprocess(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.worker_process import settings_env

    monkeypatch.setenv("FRICTIONWATCH_TRIAGE_QUEUES", '{"card_arrival": "cards"}')
    s = load()
    assert s.triage_queues == {"card_arrival": "cards"} and s.triage_default_queue == "general"
    for k, v in settings_env(s, "k:9092").items():
        if k.startswith("FRICTIONWATCH_"):
            monkeypatch.setenv(k, v)
    assert load() == s.model_copy(update={"bootstrap_servers": "k:9092"})


def test_sasl_and_tls_pass_through() -> None:
    s = Settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                 sasl_username="u", sasl_password="p")
    kw = s.kafka_client_kwargs()
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512" and kw["sasl_plain_username"] == "u"
    assert isinstance(kw["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize("field", ["partitions", "batch_max_messages", "max_events_per_message"])
def test_invalid_values_are_refused(field: str) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: 0})


def test_short_session_timeout_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(broker_session_timeout=3)


def test_secrets_are_not_in_repr() -> None:
    """Settings are logged at start: no credential may appear in their repr."""
    s = Settings(_env_file=None, sasl_password="hunter2", segment_write_keys=["wk1"],
                 collector_tokens=["tok1"])
    text = repr(s)
    assert not any(x in text for x in ("hunter2", "wk1", "tok1")), text
