"""The broker the integration suite runs against is the one we think it is, and it works.

CI (``.ci/run``) starts a real Apache Kafka 4.x and sets ``FRICTIONWATCH_EXPECT_APACHE_KAFKA=1``.
Without that check a mistake in CI (variable not exported, wrong address) would silently run the
whole suite on the embedded tansu broker and "prove" nothing about Kafka.

How we tell Apache Kafka 4.x apart, robustly: we ask the broker itself, with a raw ApiVersions
v3 request (hand-encoded below so the answer does not depend on which kafka-python version is
installed), for its *finalized feature* ``metadata.version``. Only a KRaft-mode Apache Kafka
reports that feature, and its level is the metadata format the cluster runs: a freshly formatted
Kafka 4.x cluster finalizes a level of at least 4.0-IV0 (22), which no 3.x release can finalize
(3.9-IV0 is 21). The level is a number in the protocol, not a version string a broker could
print any way it likes, and it is what Kafka itself uses to gate 4.x behaviour.

Not used, because it does not work: API version floors. KIP-896 planned to drop Produce v0-v2 in
4.0, but 4.x brokers still advertise Produce v0 (measured on 4.4.0), so "min Produce version"
does not separate 3.x from 4.x.
"""

from __future__ import annotations

import os
import socket
import struct
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafkahelp import read_topic

pytestmark = pytest.mark.integration

EXPECT_APACHE_KAFKA = os.environ.get("FRICTIONWATCH_EXPECT_APACHE_KAFKA") == "1"

API_VERSIONS = 18
#: MetadataVersion.IBP_4_0_IV0's feature level in Apache Kafka's source.
METADATA_VERSION_4_0_IV0 = 22


class _Reader:
    """Just enough of the Kafka wire format (incl. KIP-482 compact/tagged fields) to read an
    ApiVersions v3 response."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def compact_string(self) -> str:
        n = self.uvarint() - 1
        text = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return text

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def api_versions_v3(bootstrap: str) -> dict[str, object]:
    """ApiVersions v3 straight over a socket: API ranges plus supported/finalized features."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    correlation_id = 4242

    def compact(s: str) -> bytes:
        return bytes([len(s) + 1]) + s.encode()

    # Request header v2 (client id is a classic nullable string, then empty tagged fields),
    # then the v3 body: client software name and version as compact strings, no tags.
    request = struct.pack(">hhih", API_VERSIONS, 3, correlation_id, 2) + b"fw" + b"\x00"
    request += compact("frictionwatch-ci") + compact("1") + b"\x00"
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _recv_exact(s, 4))[0]
        r = _Reader(_recv_exact(s, size))
    # ApiVersions responses always use header v0 (no tagged fields), so old clients can read it.
    assert r.take(">i") == correlation_id
    error_code = r.take(">h")
    apis: dict[int, tuple[int, int]] = {}
    for _ in range(r.uvarint() - 1):
        key, lo, hi = r.take(">h"), r.take(">h"), r.take(">h")
        r.skip_tags()
        apis[key] = (lo, hi)
    r.take(">i")  # throttle_time_ms
    supported: dict[str, tuple[int, int]] = {}
    finalized: dict[str, tuple[int, int]] = {}
    for _ in range(r.uvarint()):
        tag, size = r.uvarint(), r.uvarint()
        end = r.pos + size
        if tag in (0, 2):  # SupportedFeatures / FinalizedFeatures
            into = supported if tag == 0 else finalized
            for _ in range(r.uvarint() - 1):
                name = r.compact_string()
                a, b = r.take(">h"), r.take(">h")
                r.skip_tags()
                # Supported is (min, max); Finalized is written (max_level, min_level).
                into[name] = (a, b) if tag == 0 else (b, a)
        r.pos = end
    return {"error_code": error_code, "apis": apis, "supported": supported,
            "finalized": finalized}


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


@pytest.mark.skipif(not EXPECT_APACHE_KAFKA, reason="FRICTIONWATCH_EXPECT_APACHE_KAFKA not set")
def test_broker_is_apache_kafka_4_in_kraft_mode(kafka_bootstrap):
    answer = api_versions_v3(kafka_bootstrap)
    assert answer["error_code"] == 0, f"ApiVersions v3 refused: {answer}"
    finalized = answer["finalized"]
    assert isinstance(finalized, dict)
    assert "metadata.version" in finalized, (
        f"{kafka_bootstrap} reports no finalized metadata.version, so it is not a KRaft Apache "
        f"Kafka (tansu, or a ZooKeeper-era broker?): {answer}"
    )
    level = finalized["metadata.version"][1]
    assert level >= METADATA_VERSION_4_0_IV0, (
        f"metadata.version level {level} is older than 4.0-IV0 ({METADATA_VERSION_4_0_IV0}): "
        "not a Kafka 4.x cluster"
    )


def test_embedded_broker_is_not_taken_for_apache_kafka(kafka_bootstrap):
    """The identity check above can fail: the embedded tansu broker does not pass it."""
    if EXPECT_APACHE_KAFKA or os.environ.get("FRICTIONWATCH_TEST_BOOTSTRAP_SERVERS"):
        pytest.skip("runs only against the embedded broker")
    answer = api_versions_v3(kafka_bootstrap)
    finalized = answer["finalized"]
    assert isinstance(finalized, dict)
    level = finalized.get("metadata.version", (0, 0))[1]
    assert level < METADATA_VERSION_4_0_IV0


def test_create_produce_consume_round_trip(kafka_bootstrap):
    name = f"fwtest-roundtrip-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="fw-roundtrip")
    try:
        admin.create_topics([NewTopic(name, 2, 1)], timeout_ms=30_000)
    finally:
        admin.close()
    sent = {f"k{i}".encode(): f"v{i}".encode() for i in range(20)}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in sent.items():
            producer.send(name, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()
    records = read_topic(kafka_bootstrap, name, until=lambda rs: len(rs) >= len(sent))
    assert {r.key: r.value for r in records} == sent
    assert len(records) == len(sent)
    # Keyed records spread over both partitions (default partitioner hashes the key), so the
    # topic really has the two partitions we asked for.
    assert {r.partition for r in records} == {0, 1}
