"""Command signing keys: the scheme a key file holds, signing (operators) and verifying (devices).

Two schemes, told apart by the file's content (no configuration key):

- **Ed25519** (the default for new installs, made by ``edge-agent keygen``). The operator keeps a
  private key file, one line ``ed25519-private <key-id> <base64 32-byte seed>`` (mode 0600); a
  device holds only public keys, one per line ``ed25519 <key-id> <base64 32-byte key>``, plus
  ``revoked <key-id> [reason]`` lines; ``#`` starts a comment. A stolen device cannot sign.
- **HMAC-SHA256**: any other content is one shared secret (the file's stripped text), as before.

Both sign the same canonical bytes (agent.mqtt.commands.signing_text); signatures are hex.
Ed25519 through the ``cryptography`` package (``Ed25519PrivateKey.from_private_bytes``, ``sign``,
``Ed25519PublicKey.verify`` raising ``InvalidSignature``; raw 32-byte keys, available since 2.6:
https://cryptography.io/en/latest/hazmat/primitives/asymmetric/ed25519/).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import stat
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from agent.util.errors import ConfigError, InputError

log = logging.getLogger(__name__)

ED25519 = "ed25519"
HMAC_SHA256 = "hmac-sha256"
PRIVATE_TAG = "ed25519-private"
PUBLIC_TAG = "ed25519"
REVOKED_TAG = "revoked"
MAX_KEY_ID = 64


class Refused(Exception):
    """A signature that does not verify: ``code`` for the error answer, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class HmacKey:
    """A shared HMAC-SHA256 secret: signs and verifies (``kid`` is not used)."""

    scheme = HMAC_SHA256

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self.kid: Optional[str] = None

    def sign(self, message: bytes) -> str:
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, sig: str, kid: Optional[str]) -> None:
        if not hmac.compare_digest(self.sign(message), sig):
            raise Refused(
                "bad_signature", "the signature does not match (wrong key, or a request for another device or command)"
            )


class Ed25519Signer:
    """An operator's private key with its key id."""

    scheme = ED25519

    def __init__(self, kid: str, key: Ed25519PrivateKey) -> None:
        self.kid: Optional[str] = kid
        self._key = key

    def sign(self, message: bytes) -> str:
        return self._key.sign(message).hex()

    def public_line(self) -> str:
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{PUBLIC_TAG} {self.kid} {base64.b64encode(raw).decode('ascii')}"


class PublicKeys:
    """A device's operator public keys by key id, and the revoked ids with their reasons."""

    scheme = ED25519

    def __init__(self, keys: Dict[str, Ed25519PublicKey], revoked: Dict[str, str]) -> None:
        self.keys = keys
        self.revoked = revoked

    def verify(self, message: bytes, sig: str, kid: Optional[str]) -> None:
        if kid is None:
            raise Refused("bad_signature", "kid: missing; this device takes Ed25519 signatures with a key id")
        if kid in self.revoked:
            raise Refused("revoked_key", f"kid: key {kid!r} is revoked ({self.revoked[kid] or 'no reason given'})")
        key = self.keys.get(kid)
        if key is None:
            raise Refused("unknown_key", f"kid: key {kid!r} is not among this device's {len(self.keys)} key(s)")
        try:
            key.verify(bytes.fromhex(sig), message)
        except (ValueError, InvalidSignature):
            raise Refused(
                "bad_signature",
                f"the signature does not verify with key {kid!r} (another key, or a request for another device or "
                "command)",
            ) from None


Signer = Union[HmacKey, Ed25519Signer]
Verifier = Union[HmacKey, PublicKeys]


class _Line(NamedTuple):
    number: int
    words: List[str]


def _lines(text: str) -> List[_Line]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if words:
            out.append(_Line(number, words))
    return out


def _is_keyed(lines: List[_Line]) -> bool:
    return any(line.words[0] in (PRIVATE_TAG, PUBLIC_TAG, REVOKED_TAG) for line in lines)


def _key_id(word: str, where: str) -> str:
    if not (0 < len(word) <= MAX_KEY_ID and word.isprintable()):
        raise ConfigError([f"{where}: key id must be 1-{MAX_KEY_ID} printable characters, got {word!r}"])
    return word


def _raw32(word: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(word, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError([f"{where}: expected a base64 32-byte key, got {word[:20]!r}"])
    return raw


def parse_public_keys(text: str, source: str) -> Verifier:
    """The verifier a device's key file holds: Ed25519 public keys, or else an HMAC secret."""
    lines = _lines(text)
    if not lines:
        raise ConfigError([f"{source} is empty (no key)"])
    if not _is_keyed(lines):
        return HmacKey(text.strip().encode("utf-8"))
    keys: Dict[str, Ed25519PublicKey] = {}
    revoked: Dict[str, str] = {}
    errors: List[str] = []
    for line in lines:
        where = f"{source}:{line.number}"
        tag, rest = line.words[0], line.words[1:]
        try:
            if tag == PUBLIC_TAG and len(rest) == 2:
                kid = _key_id(rest[0], where)
                if kid in keys:
                    raise ConfigError([f"{where}: key id {kid!r} appears twice"])
                keys[kid] = Ed25519PublicKey.from_public_bytes(_raw32(rest[1], where))
            elif tag == REVOKED_TAG and rest:
                revoked[_key_id(rest[0], where)] = " ".join(rest[1:])
            elif tag == PRIVATE_TAG:
                raise ConfigError([f"{where}: a private key; devices hold public keys only (edge-agent keygen)"])
            else:
                raise ConfigError([f"{where}: expected 'ed25519 <key-id> <base64 key>' or 'revoked <key-id> [reason]'"])
        except ConfigError as exc:
            errors.extend(exc.errors)
    if not errors and not set(keys) - set(revoked):
        errors.append(f"{source}: no usable key (every Ed25519 key id is revoked, or none is listed)")
    if errors:
        raise ConfigError(errors)
    return PublicKeys(keys, revoked)


def parse_private_key(text: str, source: str) -> Signer:
    """The signer an operator's key file holds: an Ed25519 private key, or else an HMAC secret."""
    lines = _lines(text)
    if not lines:
        raise InputError(f"{source} is empty (no key)")
    if not _is_keyed(lines):
        return HmacKey(text.strip().encode("utf-8"))
    first = lines[0]
    if len(lines) != 1 or first.words[0] != PRIVATE_TAG or len(first.words) != 3:
        raise InputError(
            f"{source}: not a private key (expected one line 'ed25519-private <key-id> <base64 key>'; a device's "
            "public key file cannot sign)"
        )
    where = f"{source}:{first.number}"
    try:
        kid = _key_id(first.words[1], where)
        return Ed25519Signer(kid, Ed25519PrivateKey.from_private_bytes(_raw32(first.words[2], where)))
    except ConfigError as exc:
        raise InputError("; ".join(exc.errors)) from None


def _read(key: str, path: str) -> Tuple[str, int]:
    try:
        return Path(path).read_text(encoding="utf-8"), os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError([f"{key}: cannot read {path}: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{key}: {path} is not UTF-8 text"]) from None


def load_verifier(key: str, path: str) -> Verifier:
    """A device's verifier from the file ``path`` (config key ``key``); ConfigError naming both."""
    text, mode = _read(key, path)
    try:
        verifier = parse_public_keys(text, path)
    except ConfigError as exc:
        raise ConfigError([f"{key}: {error}" for error in exc.errors]) from None
    if verifier.scheme == HMAC_SHA256 and mode & stat.S_IRWXO:
        log.warning("%s: %s holds a shared secret and is readable by other users; chmod 600 it", key, path)
    return verifier


def load_signer(path: str) -> Signer:
    """An operator's signer from the key file ``path``."""
    text, _ = _read("--key-file", path)
    return parse_private_key(text, path)


def generate(kid: str) -> Tuple[Ed25519Signer, str]:
    """A new Ed25519 key pair: the signer and the private key file's text."""
    _key_id(kid, "key id")
    if any(c.isspace() or c == "#" for c in kid):
        raise InputError(f"key id: no spaces or '#', got {kid!r}")
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    text = f"{PRIVATE_TAG} {kid} {base64.b64encode(seed).decode('ascii')}\n"
    return Ed25519Signer(kid, private), text
