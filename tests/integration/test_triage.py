"""Ticket triage end to end: tickets through the collector, learned from the agents'
categories, triage records for new tickets."""

from __future__ import annotations

import json
import time

import pytest
from kafkahelp import http_get, http_post, read_topic, topic

pytestmark = pytest.mark.integration


def _ticket(i: int, text: str, created: str, updated: str,
            category: str | None = None) -> bytes:
    ticket = {"id": i, "requester_id": 700 + i, "description": text, "status": "open",
              "created_at": created, "updated_at": updated}
    if category is not None:
        ticket["tags"] = ["vip", f"category:{category}"]
    return json.dumps({"ticket": ticket}).encode()


def test_tickets_are_triaged_and_learned_from_agents_categories(worker, kafka_bootstrap):
    t0, t1 = "2026-01-01T10:00:00Z", "2026-01-01T10:05:00Z"
    url = worker.url + "/collect/support"
    for i, (text, category) in enumerate([
        ("my card has not arrived yet", "card_arrival"),
        ("I was charged twice for one purchase", "duplicate_charge"),
    ]):
        assert http_post(url, _ticket(i, text, t0, t0))[0] == 200  # created
        assert http_post(url, _ticket(i, text, t0, t1, category))[0] == 200  # agent's category
    assert http_post(url, _ticket(9, "card still has not arrived", t1, t1))[0] == 200

    records = read_topic(kafka_bootstrap, topic(worker.settings, "triage"),
                         until=lambda rs: any(json.loads(r.value)["ticket_id"] == "9"
                                              for r in rs))
    [(key, new)] = [(r.key, json.loads(r.value)) for r in records
                    if json.loads(r.value)["ticket_id"] == "9"]
    assert new["category"] == "card_arrival" and new["queue"] == "general"
    assert key == b"709"  # keyed by customer
    learned = 'frictionwatch_model_examples_learned_total{model="triage"} 2.0'
    deadline = time.monotonic() + 15  # the gauges are refreshed every 5 s
    while learned not in http_get(worker.url + "/metrics") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert learned in http_get(worker.url + "/metrics")
