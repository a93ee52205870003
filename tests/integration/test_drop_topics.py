"""``drop_topics`` removes what one run made (its declared topics and the app's own) and leaves
every other run's topics alone: benches share a broker across runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafkahelp import isolated_settings

from streams.kafka_io import drop_topics, ensure_topics
from streams.settings import Settings
from streams.topics import TOPICS, topic_name

pytestmark = pytest.mark.integration


def test_a_runs_topics_go_and_another_runs_stay(fw_settings: Settings, kafka_bootstrap: str,
                                                 tmp_path: Path) -> None:
    other = isolated_settings(tmp_path / "other")
    ensure_topics(other, kafka_bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        changelog = f"{fw_settings.app_id}-sessions-changelog"
        admin.create_topics([NewTopic(changelog, fw_settings.partitions, 1)])
        ours = {topic_name(t, fw_settings.topic_prefix) for t in TOPICS} | {changelog}
        theirs = {topic_name(t, other.topic_prefix) for t in TOPICS}
        deadline = time.monotonic() + 30
        while not ours | theirs <= set(admin.list_topics()) and time.monotonic() < deadline:
            time.sleep(0.2)  # a new topic is listed once the broker's metadata has it

        dropped = drop_topics(fw_settings, kafka_bootstrap)

        if not dropped:
            pytest.skip("this broker does not delete topics (the embedded tansu)")
        assert set(dropped) == ours
        deadline = time.monotonic() + 30
        while ours & set(admin.list_topics()) and time.monotonic() < deadline:
            time.sleep(0.2)  # deletion completes after the request returns
        left = set(admin.list_topics())
        assert not ours & left
        assert theirs <= left
    finally:
        admin.close()
