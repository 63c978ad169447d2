#!/usr/bin/env python3
"""Independent reference implementation of the backup file format, version 1
(docs/backup-file-format.md), written from the document alone with the `cryptography`
package. It prints the test vectors of the document; the .NET tests check the .NET codec
against them byte for byte, so the two implementations check each other.

Usage: python3 eng/backup-file-vectors.py
"""
import hashlib
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"KMSBKF"
VERSION = 1
SEGMENT_KEY_INFO = b"KmsBackup backup file v1 segment key"
COMMITMENT_INFO = b"KmsBackup backup file v1 key commitment"


def hkdf(dek: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(dek)


def encrypt(plaintext: bytes, dek: bytes, salt: bytes, prefix: bytes, segment_size: int) -> bytes:
    key = hkdf(dek, salt, SEGMENT_KEY_INFO)
    commitment = hkdf(dek, salt, COMMITMENT_INFO)
    header = MAGIC + bytes([VERSION]) + struct.pack(">I", segment_size) + salt + prefix + commitment
    header += hashlib.sha256(header).digest()[:16]
    aes = AESGCM(key)
    out = bytearray(header)
    index = 0
    offset = 0
    while True:
        chunk = plaintext[offset:offset + segment_size]
        final = len(chunk) < segment_size  # the final segment holds fewer than segment_size bytes
        nonce = prefix + struct.pack(">I", index) + bytes([1 if final else 0])
        out += aes.encrypt(nonce, chunk, header)  # ciphertext || 16-byte tag, header as associated data
        if final:
            return bytes(out)
        offset += segment_size
        index += 1


def wrap(label: str, data: bytes) -> str:
    text = data.hex()
    if not text:
        return f"{label}: (empty)"
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return f"{label}: " + lines[0] + "".join("\n    " + line for line in lines[1:])


def main() -> None:
    dek = bytes(range(0x00, 0x20))
    salt = bytes(range(0x40, 0x60))
    prefix = bytes(range(0xA0, 0xA7))
    segment = 64
    vectors = [
        ("empty plaintext", b""),
        ("one byte", b"\x4b"),
        ("two full segments plus one byte", bytes(i & 0xFF for i in range(2 * segment + 1))),
        ("two full segments exactly (an empty final segment)", bytes(i & 0xFF for i in range(2 * segment))),
    ]
    for number, (name, plaintext) in enumerate(vectors, start=1):
        file = encrypt(plaintext, dek, salt, prefix, segment)
        print(f"### Vector {number}: {name}\n")
        print("```vector")
        print(f"segment size: {segment}")
        print(wrap("data key", dek))
        print(wrap("salt", salt))
        print(wrap("nonce prefix", prefix))
        print(wrap("plaintext", plaintext))
        print(wrap("file", file))
        print("```\n")


if __name__ == "__main__":
    main()
