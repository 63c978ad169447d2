#!/usr/bin/env python3
"""Independent reference encoder of the day payload (docs/backup-file-format.md, "The payload"),
written from the document alone. It builds a small day field by field, encrypts it as a backup
file with fixed inputs (the container of eng/backup-file-vectors.py), derives the failure
vectors from that file, and writes them all to docs/vectors/day-payload-v1.json. The .NET tests
(DayPayloadVectorTests) read that file: their own reader decodes the day, and the SDK must accept
the file, yield the same items, and refuse each failure vector with its code.

Usage: python3 eng/day-payload-vectors.py
"""
import datetime
import importlib.util
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("container", ROOT / "eng" / "backup-file-vectors.py")
container = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(container)

MAGIC = b"KBDAY001"
INSTANCE_KINDS = {"software": 1, "hardware": 2}
ITEM_TYPES = {"key": 1, "secret": 2}
CHANGE_KINDS = {"added": 1, "deleted": 2, "rotated": 4, "metadata changed": 8, "rotated and metadata changed": 12}
EPOCH = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)


def varuint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def string(value) -> bytes:
    if value is None:
        return varuint(0)
    utf8 = value.encode("utf-8")
    return varuint(len(utf8) + 1) + utf8


def byte_string(value: bytes) -> bytes:
    return varuint(len(value)) + value


def instant(text: str) -> bytes:
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    delta = moment - EPOCH
    ticks = (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10
    return struct.pack("<q", ticks)


def key(item: dict) -> bytes:
    out = string(item["name"]) + string(item["id"]) + string(item["spec"]) + string(item["creator"])
    out += instant(item["createdAt"]) + string(item["description"]) + varuint(len(item["versions"]))
    for version in item["versions"]:
        out += string(version["id"]) + instant(version["createdAt"])
        if version["material"] is None:
            out += b"\x00"
        else:
            out += b"\x01" + byte_string(bytes.fromhex(version["material"]))
    return out


def secret(item: dict) -> bytes:
    out = string(item["name"]) + string(item["encryptingKeyId"]) + string(item["creator"])
    out += instant(item["createdAt"]) + string(item["description"]) + varuint(len(item["versions"]))
    for version in item["versions"]:
        out += string(version["id"]) + instant(version["createdAt"]) + byte_string(bytes.fromhex(version["ciphertext"]))
    return out


def point(p: dict) -> bytes:
    out = instant(p["takenAt"]) + string(p["instanceId"]) + bytes([INSTANCE_KINDS[p["instanceKind"]]])
    out += string(p["region"]) + string(p["ownerAccount"])
    out += varuint(len(p["keys"])) + b"".join(key(k) for k in p["keys"])
    out += varuint(len(p["secrets"])) + b"".join(secret(s) for s in p["secrets"])
    return out


def payload(day: dict) -> bytes:
    day_number = datetime.date.fromisoformat(day["date"]).toordinal() - 1  # 0001-01-01 is day 0
    out = MAGIC + string(day["sourceBackupId"]) + struct.pack("<i", day_number) + string(day["timeZone"])
    out += point(day["full"]) + point(day["last"])
    out += varuint(len(day["changes"]))
    for change in day["changes"]:
        out += bytes([ITEM_TYPES[change["type"]], CHANGE_KINDS[change["kind"]]]) + string(change["name"])
    return out


OWNER = "1380000000000001"
SPEC = "Aliyun_AES_256"


def the_day() -> dict:
    alpha_v1 = {"id": "v1", "createdAt": "2026-01-15T08:00:00Z", "material": bytes(range(0x10, 0x30)).hex()}
    alpha = {"name": "alpha", "id": "key-a", "spec": SPEC, "creator": OWNER, "createdAt": "2026-01-15T08:00:00Z",
             "description": "orders", "versions": [alpha_v1]}
    beta = {"name": "beta", "id": "key-b", "spec": SPEC, "creator": OWNER, "createdAt": "2026-02-01T09:30:00Z",
            "description": None, "versions": [{"id": "v1", "createdAt": "2026-02-01T09:30:00Z", "material": bytes(range(0x30, 0x50)).hex()}]}
    gamma = {"name": "gamma", "id": "key-c", "spec": SPEC, "creator": OWNER, "createdAt": "2026-04-28T02:15:00Z",
             "description": "clé de test", "versions": [{"id": "v1", "createdAt": "2026-04-28T02:15:00Z", "material": bytes(range(0x50, 0x70)).hex()}]}
    db = {"name": "db-password", "encryptingKeyId": "key-a", "creator": OWNER, "createdAt": "2026-03-02T10:00:00Z",
          "description": "database", "versions": [{"id": "s1", "createdAt": "2026-03-02T10:00:00Z", "ciphertext": b"ciphertext of db-password s1".hex()}]}
    token = {"name": "old-token", "encryptingKeyId": "key-b", "creator": OWNER, "createdAt": "2026-03-03T11:00:00Z",
             "description": None, "versions": [{"id": "s1", "createdAt": "2026-03-03T11:00:00Z", "ciphertext": b"ciphertext of old-token s1".hex()}]}
    source = {"instanceId": "kst-vector", "instanceKind": "software", "region": "cn-hangzhou", "ownerAccount": OWNER}
    full = {"takenAt": "2026-04-27T16:05:00Z", **source, "keys": [alpha, beta], "secrets": [db, token]}
    alpha_rotated = {**alpha, "versions": [alpha_v1, {"id": "v2", "createdAt": "2026-04-28T01:00:00Z", "material": bytes(range(0x70, 0x90)).hex()}]}
    db_changed = {**db, "description": "database (primary)"}
    last = {"takenAt": "2026-04-28T04:00:00Z", **source, "keys": [alpha_rotated, beta, gamma], "secrets": [db_changed]}
    return {
        "sourceBackupId": "bka-vector",
        "date": "2026-04-28",
        "timeZone": "Asia/Shanghai",
        "full": full,
        "last": last,
        "changes": [
            {"type": "key", "kind": "rotated", "name": "alpha"},
            {"type": "secret", "kind": "deleted", "name": "old-token"},
            {"type": "key", "kind": "added", "name": "gamma"},
            {"type": "secret", "kind": "metadata changed", "name": "db-password"},
        ],
    }


def main() -> None:
    dek = bytes(range(0x00, 0x20))
    salt = bytes(range(0x40, 0x60))
    prefix = bytes(range(0xA0, 0xA7))
    segment = 256
    header = 98
    stored = segment + 16
    day = the_day()
    plain = payload(day)
    file = container.encrypt(plain, dek, salt, prefix, segment)
    segments = (len(file) - header + stored - 1) // stored
    assert len(plain) % segment != 0 and len(file) - header - (segments - 1) * stored > 17, "the vector needs a non-empty final segment"

    # The same day with its full backup's two keys swapped: a file that opens under its key but holds no valid day.
    unordered = json.loads(json.dumps(day))
    unordered["full"]["keys"].reverse()
    tampered = bytearray(file)
    tampered[header + stored + 10] ^= 0x01  # a bit of segment 1's ciphertext
    swapped = file[:header] + file[header + stored:header + 2 * stored] + file[header:header + stored] + file[header + 2 * stored:]
    final_start = header + (segments - 1) * stored

    def failure(name, why, code, data_file, data_key=dek):
        return {"name": name, "why": why, "dataKey": data_key.hex(), "file": data_file.hex(), "code": code}

    document = {
        "format": "KmsBackup backup file version 1 holding a day payload KBDAY001 (docs/backup-file-format.md)",
        "generator": "python3 eng/day-payload-vectors.py",
        "success": {
            "segmentSize": segment,
            "dataKey": dek.hex(),
            "salt": salt.hex(),
            "noncePrefix": prefix.hex(),
            "day": day,
            "payload": plain.hex(),
            "file": file.hex(),
        },
        "failures": [
            failure("wrong key", "the data key of another download: the key commitment does not match", "WrongFileKey", file, bytes(range(0x20, 0x40))),
            failure("short data key", "a data key of 31 bytes (refused before the file is read)", "InvalidDataKey", file, dek[:31]),
            failure("tampered segment", "one bit of segment 1's ciphertext flipped", "FileCorrupt", bytes(tampered)),
            failure("reordered segments", "segments 0 and 1 swapped", "FileCorrupt", swapped),
            failure("cut by one byte", "the last byte removed: the rest of the final segment is read as a final segment and its tag fails", "FileCorrupt", file[:-1]),
            failure("cut at a segment boundary", "the final segment removed: the file ends after a non-final segment", "FileTruncated", file[:final_start]),
            failure("cut to less than a tag", "the file ends 15 bytes into its final segment, fewer than a tag", "FileTruncated", file[:final_start + 15]),
            failure("trailing byte", "one byte appended after the final segment", "FileCorrupt", file + b"\x00"),
            failure("invalid payload", "a well-encrypted file whose full backup lists its keys out of name order", "FileCorrupt",
                    container.encrypt(payload(unordered), dek, salt, prefix, segment)),
        ],
    }
    target = ROOT / "docs" / "vectors" / "day-payload-v1.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(plain)} payload bytes, {len(file)} file bytes in {segments} segments")


if __name__ == "__main__":
    main()
