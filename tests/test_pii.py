"""PII redaction (docs/pipeline.md): events carrying emails, card numbers, IP
addresses and tokens in attributes, bodies and nested fields, sent through the Events
API and OTLP (the OpenTelemetry SDK over gRPC and HTTP), never reach the data
directory or the server log; hashed values stay equal for equal inputs.

The search looks at the bytes of every file under the data directory and of the log,
and also decodes what is compressed (WAL frames: lz4 blocks of Arrow IPC; segments:
Parquet), since a value compressed on disk would escape a plain byte search. A
canary value no rule touches is found by the same search, so the search itself is
shown to see the data.
"""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import requests
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from harness import DEFAULT_KEY, HTTP_TIMEOUT_S

RUN = uuid.uuid4().hex[:8]

# Every value here must be gone from disk and log. Unique per run, so a hit can only
# come from this test's events.
EMAIL = f"jane.doe.{RUN}@example.com"
EMAIL_2 = f"ops-{RUN}@mail.example.org"
CARD = "4111 1111 1111 1111"
CARD_DIGITS = "4111111111111111"
CARD_2 = "5500-0000-0000-0004"
IPV4 = "203.0.113.77"
IPV6 = "2001:db8:85a3::8a2e:370:7334"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    f"eyJzdWIiOiJ{RUN}IiwibmFtZSI6IkphbmUifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
BEARER = f"Bearer tok{RUN}ABCDEFabcdef0123456789"
AWS_KEY = f"AKIA{RUN.upper()}ABCDEF12"[:20]
GITHUB = f"ghp_{RUN}" + "A" * 28
SLACK = f"xoxb-{RUN}-1234567890-abcdefghij"
STRIPE = f"sk_live_{RUN}abcdefghijklmnop"
PASSWORD = f"hunter2-{RUN}"
USER_ID = f"user-{RUN}-42"

SECRETS = [
    EMAIL, EMAIL_2, CARD, CARD_DIGITS, CARD_2, IPV4, IPV6, JWT, BEARER, AWS_KEY, GITHUB,
    SLACK, STRIPE, PASSWORD, USER_ID,
    # Distinctive parts, so a value split or re-encoded is found too.
    f"tok{RUN}ABCDEF", f"jane.doe.{RUN}", f"ops-{RUN}",
]
CANARY = f"canary-visible-{RUN}"

RULES = {
    "redaction": [
        {"name": "secrets", "action": "drop", "fields": ["password", "auth.*"]},
        {"name": "users", "action": "hash", "fields": ["user.email", "user.id"]},
        {
            "name": "pii",
            "action": "mask",
            "patterns": ["email", "card_number", "ipv4", "ipv6", "bearer_token", "jwt", "api_key"],
        },
    ]
}


def text_with_everything() -> str:
    return (
        f"login by {EMAIL} from {IPV4} and [{IPV6}] paid {CARD} then {CARD_2}; "
        f"Authorization: {BEARER}; jwt={JWT}; aws={AWS_KEY} gh={GITHUB} slack={SLACK} "
        f"stripe={STRIPE}"
    )


def put_rules(server, rules: dict) -> requests.Response:
    return requests.put(
        f"{server.base}/api/v1/admin/pipeline/default",
        data=json.dumps(rules),
        headers=server.headers(extra={"Content-Type": "application/json"}),
        timeout=HTTP_TIMEOUT_S,
    )


def send_events(server) -> None:
    events = [
        {
            "data": {
                "message": text_with_everything(),
                "note": CANARY,
                "password": PASSWORD,
                "auth": {"token": JWT, "basic": {"user": EMAIL}},
                "user": {"email": EMAIL, "id": USER_ID, "profile": {"contact": f"mail {EMAIL_2}"}},
                "client": {"ip": IPV4, "ipv6": IPV6},
                "tags": [EMAIL, CARD, {"deep": STRIPE}],
                "level1": {"level2": {"level3": {"level4": {"level5": {"level6": GITHUB}}}}},
            }
        },
        # The same user again: its hash must equal the first one's.
        {"data": {"user": {"email": EMAIL}, "note": "second"}},
        # A key that is itself an email address.
        {"data": {"visits": {EMAIL_2: 3}, "note": "keyed"}},
    ]
    server.send_batch_ok("shop", events)
    resp = server.send_event("shop", {"header": BEARER, "user": {"email": EMAIL_2}, "note": "single"})
    assert resp.status_code == 200, resp.text


def send_otlp(server) -> None:
    team = {"x-honeycomb-team": DEFAULT_KEY}
    resource = Resource.create({"service.name": "pii-svc", "host.ip": IPV4, "owner": EMAIL})
    grpc_traces = TracerProvider(resource=resource)
    grpc_traces.add_span_processor(
        SimpleSpanProcessor(GrpcSpanExporter(endpoint=server.otlp_grpc_endpoint, insecure=True, headers=team))
    )
    http_traces = TracerProvider(resource=Resource.create({"service.name": "pii-http"}))
    http_traces.add_span_processor(
        SimpleSpanProcessor(HttpSpanExporter(endpoint=f"{server.otlp_http_base}/v1/traces", headers=team))
    )
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(
        SimpleLogRecordProcessor(HttpLogExporter(endpoint=f"{server.otlp_http_base}/v1/logs", headers=team))
    )
    tracer = grpc_traces.get_tracer("pii.test")
    with tracer.start_as_current_span(
        "checkout",
        attributes={
            "user.email": EMAIL,
            "card": CARD,
            "http.request.header.authorization": BEARER,
            "peer.ips": [IPV4, IPV6],
            "note": CANARY,
        },
    ) as span:
        span.add_event("payment", {"detail": text_with_everything()})
    with http_traces.get_tracer("pii.http").start_as_current_span(
        "call", attributes={"token": JWT, "keys": f"{AWS_KEY} {SLACK}"}
    ):
        pass
    log = logs.get_logger("pii.log")
    log.emit(severity_number=SeverityNumber.WARN, body=text_with_everything(), attributes={"who": EMAIL})
    log.emit(
        severity_number=SeverityNumber.INFO,
        body={"msg": "retry", "customer": {"email": EMAIL_2, "card": CARD_2}, "ips": [IPV4]},
    )
    for provider in (grpc_traces, http_traces, logs):
        provider.shutdown()


# ------------------------------------------------------------ searching disk


def wal_texts(path: Path) -> list[bytes]:
    """The Arrow IPC streams of a WAL file's frames, decompressed (format in
    crates/segment-store/src/wal/frame.rs)."""
    data = path.read_bytes()
    assert data[:4] == b"QWAL", path
    version = struct.unpack_from("<I", data, 4)[0]
    out, at = [], 8
    codec = pa.Codec("lz4_raw")
    while at + 8 <= len(data):
        length = struct.unpack_from("<I", data, at)[0]
        payload = data[at + 8 : at + 8 + length]
        if len(payload) < length:
            break
        if version >= 2:
            flags = payload[8]
            if flags & 2:  # a positions frame: no rows
                at += 8 + length
                continue
            cursor = 9
        else:
            cursor = 8
        for _ in range(2):  # environment, dataset
            name_len = struct.unpack_from("<H", payload, cursor)[0]
            cursor += 2 + name_len
        size = struct.unpack_from("<I", payload, cursor)[0]
        stream = codec.decompress(payload[cursor + 4 :], decompressed_size=size)
        out.append(stream.to_pybytes())
        out.append(table_text(ipc.open_stream(stream).read_all()))
        at += 8 + length
    return out


def table_text(table: pa.Table) -> bytes:
    """Every column name and value of a table, as text."""
    parts = [json.dumps(table.schema.names)]
    for column in table.columns:
        parts.extend(str(value) for value in column.to_pylist() if value is not None)
    return "\n".join(parts).encode()


def disk_texts(data_dir: Path) -> dict[str, list[bytes]]:
    """Every file's bytes, plus its decoded content for WAL and Parquet files."""
    texts: dict[str, list[bytes]] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        blobs = [path.read_bytes()]
        if path.suffix == ".wal":
            blobs += wal_texts(path)
        elif path.suffix == ".parquet":
            blobs.append(table_text(pq.read_table(path)))
        texts[str(path.relative_to(data_dir))] = blobs
    return texts


def found(texts: dict[str, list[bytes]], needle: str) -> list[str]:
    raw = needle.encode()
    return [name for name, blobs in texts.items() if any(raw in blob for blob in blobs)]


def assert_nothing_leaked(server, stage: str) -> None:
    texts = disk_texts(server.data_dir)
    texts["<server log>"] = [server.log_path.read_bytes()]
    # The search sees the data: the untouched canary is found where data lives.
    canary_in = found(texts, CANARY)
    assert canary_in, f"{stage}: the canary is nowhere, so the search sees nothing: {sorted(texts)}"
    leaks = {secret: found(texts, secret) for secret in SECRETS}
    leaks = {secret: files for secret, files in leaks.items() if files}
    assert not leaks, f"{stage}: unredacted values on disk or in the log: {leaks}"
    return canary_in


# ------------------------------------------------------------------- tests


def test_pii_never_reaches_disk_or_log_and_hashes_join(quarry):
    server = quarry(config={"pipeline": {"hash_key": f"test-hash-key-{RUN}-0123456789"}})
    resp = put_rules(server, RULES)
    assert resp.status_code == 200, resp.text
    assert [rule["name"] for rule in resp.json()["redaction"]] == ["secrets", "users", "pii"]

    send_events(server)
    send_otlp(server)

    # In the WAL and buffers (nothing sealed yet).
    canary_files = assert_nothing_leaked(server, "before sealing")
    assert any(name.endswith(".wal") for name in canary_files), canary_files

    # What is stored is the redacted form.
    first = server.rows(
        'SELECT message, "user.email", "user.id", "user.profile.contact", '
        '"client.ip", "client.ipv6", tags FROM shop WHERE note = ' + f"'{CANARY}'"
    )
    assert len(first) == 1, first
    row = first[0]
    columns = server.columns("shop")
    assert not any(name.startswith(("password", "auth.")) for name in columns), columns
    assert row["message"] == (
        "login by [email] from [ipv4] and [[ipv6]] paid [card_number] then [card_number]; "
        "Authorization: [bearer_token]; jwt=[jwt]; aws=[api_key] gh=[api_key] slack=[api_key] "
        "stripe=[api_key]"
    ), row["message"]
    assert row["user.profile.contact"] == "mail [email]"
    assert row["client.ip"] == "[ipv4]" and row["client.ipv6"] == "[ipv6]"
    assert json.loads(row["tags"]) == ["[email]", "[card_number]", {"deep": "[api_key]"}]
    hashed = row["user.email"]
    assert len(hashed) == 64 and int(hashed, 16) >= 0 and hashed != EMAIL
    assert row["user.id"] != USER_ID and len(row["user.id"]) == 64

    # Equal inputs, equal hashes (so they still group and join); other inputs differ.
    second = server.scalar("SELECT \"user.email\" FROM shop WHERE note = 'second'")
    assert second == hashed
    single = server.scalar("SELECT \"user.email\" FROM shop WHERE note = 'single'")
    assert single != hashed and len(single) == 64
    assert server.scalar("SELECT header FROM shop WHERE note = 'single'") == "[bearer_token]"
    # A field named by an email address is dropped, not renamed.
    assert not any(EMAIL_2 in column for column in columns)

    # OTLP: span attributes, span events, resource attributes, log bodies.
    span = server.rows(f"SELECT card, \"user.email\", owner, \"host.ip\", \"peer.ips\" FROM \"pii-svc\" WHERE note = '{CANARY}'")
    assert len(span) == 1, span
    assert span[0]["card"] == "[card_number]"
    assert span[0]["user.email"] == hashed  # the same key hashes OTLP and Events API alike
    assert span[0]["owner"] == "[email]" and span[0]["host.ip"] == "[ipv4]"
    assert json.loads(span[0]["peer.ips"]) == ["[ipv4]", "[ipv6]"]
    bodies = [r["body"] for r in server.rows('SELECT body FROM "pii-svc" WHERE body IS NOT NULL')]
    assert any(body.startswith("login by [email] from [ipv4]") for body in bodies), bodies
    assert server.scalar('SELECT "body.customer.email" FROM "pii-svc" WHERE "body.msg" = \'retry\'') == "[email]"
    assert server.scalar('SELECT token FROM "pii-http"') == "[jwt]"

    # Counters by rule.
    metrics = requests.get(server.base + "/metrics", timeout=HTTP_TIMEOUT_S).text
    counted = {
        rule: sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("quarry_pipeline_redactions_total{") and f'rule="{rule}"' in line
        )
        for rule in ("secrets", "users", "pii")
    }
    assert counted["secrets"] >= 3 and counted["users"] >= 5 and counted["pii"] >= 30, counted

    # In segments (and the manifest) after sealing, and after a restart.
    server.seal()
    canary_files = assert_nothing_leaked(server, "after sealing")
    assert any(name.endswith(".parquet") for name in canary_files), canary_files
    server.stop()
    server.start()
    assert server.scalar("SELECT count(*) FROM shop") == 4
    assert_nothing_leaked(server, "after a restart")


def test_rules_are_validated_persisted_and_survive_a_restart(quarry):
    server = quarry()
    bad = put_rules(server, {"redaction": [{"name": "x", "action": "mask", "patterns": ["emial"]}]})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("redaction[0].patterns[0]"), bad.json()
    bad = put_rules(server, {"redaction": [{"name": "x", "action": "hash"}]})
    assert bad.status_code == 400 and bad.json()["error"].startswith("redaction[0].fields"), bad.json()
    bad = put_rules(server, {"quota": {"events_per_second": 0}})
    assert bad.status_code == 400 and bad.json()["error"].startswith("quota.events_per_second")
    assert requests.get(
        f"{server.base}/api/v1/admin/pipeline/default", headers=server.headers(), timeout=HTTP_TIMEOUT_S
    ).json() == {"redaction": [], "quota": {}}

    assert put_rules(server, RULES).status_code == 200
    server.stop()
    server.start()
    rules = requests.get(
        f"{server.base}/api/v1/admin/pipeline/default", headers=server.headers(), timeout=HTTP_TIMEOUT_S
    ).json()
    assert rules["redaction"] == RULES["redaction"]
    server.send_batch_ok("after", [{"data": {"msg": f"to {EMAIL}", "password": PASSWORD}}])
    assert server.rows("SELECT * FROM after")[0]["msg"] == "to [email]"
    assert "password" not in server.columns("after")
