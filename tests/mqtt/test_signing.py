"""Ed25519 command signing: key files, key ids, revocation, keygen, and config check on key files."""

from __future__ import annotations

import json
import stat
import time

import pytest

from agent.cli.main import main
from agent.mqtt.commands import CommandServer, make_request, signing_text
from agent.mqtt.keys import HmacKey, PublicKeys, generate, load_signer, load_verifier, parse_public_keys
from agent.mqtt.link import Settings
from agent.util.errors import ConfigError, InputError

from .conftest import wait_for
from .test_commands import NOW, Answers

ALICE, ALICE_KEY = generate("alice")
BOB, BOB_KEY = generate("bob")


def device_keys(*lines: str) -> PublicKeys:
    verifier = parse_public_keys("\n".join(lines) + "\n", "keys")
    assert isinstance(verifier, PublicKeys)
    return verifier


def ask(srv: CommandServer, payload: bytes, command: str = "status"):
    answers = Answers()
    srv.handle(command, payload, answers)
    return answers.wait_final()


def signed(signer, command: str = "status", device: str = "dev1", rid=None) -> bytes:
    return json.dumps(make_request(signer, device, command, {}, request_id=rid, epoch=NOW)).encode()


def serve(verifier) -> CommandServer:
    return CommandServer("dev1", verifier, {"status": lambda a, p: {"state": "serving"}}, clock=lambda: NOW)


def test_ed25519_request_verifies_with_the_public_key_only():
    srv = serve(device_keys("# operators", ALICE.public_line(), BOB.public_line() + "  # second operator"))
    for signer in (ALICE, BOB):
        answer = ask(srv, signed(signer))
        assert answer["status"] == "ok" and answer["result"] == {"state": "serving"}
    request = make_request(ALICE, "dev1", "status", {}, epoch=NOW)
    assert request["kid"] == "alice" and len(request["sig"]) == 128  # hex Ed25519 over the same bytes
    assert ALICE.sign(signing_text("dev1", "status", request["id"], request["ts"], {})) == request["sig"]


@pytest.mark.parametrize(
    "mutate, code",
    [
        (lambda r: r.update(kid="bob"), "bad_signature"),  # another operator's key id
        (lambda r: r.update(kid="mallory"), "unknown_key"),
        (lambda r: r.pop("kid"), "bad_signature"),
        (lambda r: r.update(sig="00" * 64), "bad_signature"),
        (lambda r: r.update(sig="zz"), "bad_signature"),
        (lambda r: r.update(args={"x": 1}), "bad_signature"),
    ],
)
def test_ed25519_refusals_name_the_reason(mutate, code):
    srv = serve(device_keys(ALICE.public_line(), BOB.public_line()))
    request = make_request(ALICE, "dev1", "status", {}, epoch=NOW)
    mutate(request)
    answer = ask(srv, json.dumps(request).encode())
    assert answer["status"] == "error" and answer["error"]["code"] == code


def test_revoked_key_is_refused_with_its_reason_and_others_still_work():
    srv = serve(device_keys(ALICE.public_line(), BOB.public_line(), "revoked alice laptop stolen 2026-11"))
    refused = ask(srv, signed(ALICE))
    assert refused["error"]["code"] == "revoked_key"
    assert "alice" in refused["error"]["message"] and "laptop stolen 2026-11" in refused["error"]["message"]
    assert ask(srv, signed(BOB))["status"] == "ok"


def test_a_device_public_key_file_cannot_sign_and_a_private_key_is_not_a_device_key(tmp_path):
    public = tmp_path / "device.keys"
    public.write_text(ALICE.public_line() + "\n")
    with pytest.raises(InputError, match="cannot sign"):
        load_signer(str(public))
    private = tmp_path / "alice.key"
    private.write_text(ALICE_KEY)
    with pytest.raises(ConfigError, match="devices hold public keys only"):
        load_verifier("commands.key_file", str(private))


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("  \n# only a comment\n", "is empty"),
        ("ed25519 alice not-base64!\n", "base64 32-byte key"),
        ("ed25519 alice\n", "expected 'ed25519 <key-id> <base64 key>'"),
        (ALICE.public_line() + "\n" + ALICE.public_line() + "\n", "appears twice"),
        (ALICE.public_line() + "\nrevoked alice\n", "no usable key"),
    ],
)
def test_bad_device_key_files_are_refused_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "device.keys"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_verifier("commands.key_file", str(path))
    assert all(error.startswith("commands.key_file: ") for error in caught.value.errors)


def test_a_file_without_key_lines_is_an_hmac_secret(tmp_path):
    path = tmp_path / "secret"
    path.write_text("  s3cret-shared \n")
    verifier = load_verifier("commands.key_file", str(path))
    assert isinstance(verifier, HmacKey)
    srv = serve(verifier)
    assert ask(srv, signed(b"s3cret-shared"))["status"] == "ok"
    assert ask(srv, signed(ALICE))["error"]["code"] == "bad_signature"


def test_keygen_writes_a_0600_private_key_and_a_public_line(tmp_path, capsys):
    out = tmp_path / "ops" / "alice.key"
    out.parent.mkdir()
    assert main(["keygen", "alice", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    signer = load_signer(str(out))
    public_line = (tmp_path / "ops" / "alice.key.pub").read_text().strip()
    assert public_line == signer.public_line() and public_line in capsys.readouterr().out
    srv = serve(device_keys(public_line))
    assert ask(srv, signed(signer))["status"] == "ok"
    assert main(["keygen", "alice", "--out", str(out)]) == 2  # never overwrites
    assert load_signer(str(out)).public_line() == public_line


def test_config_check_refuses_an_empty_or_malformed_key_file(tmp_path, capsys):
    empty = tmp_path / "empty.key"
    empty.write_text("")
    assert main(["config", "check", "--set", f"commands.key_file={empty}"]) == 2
    assert "commands.key_file" in capsys.readouterr().err
    bad = tmp_path / "bad.keys"
    bad.write_text("ed25519 alice AAAA\n")
    assert main(["config", "check", "--set", f"commands.key_file={bad}"]) == 2
    assert f"{bad}:1" in capsys.readouterr().err
    good = tmp_path / "good.keys"
    good.write_text(ALICE.public_line() + "\n")
    assert main(["config", "check", "--set", f"commands.key_file={good}"]) == 0


@pytest.mark.mqtt
def test_send_signs_with_an_ed25519_key_through_a_real_broker(make_link, broker, tmp_path, capsys):
    private = tmp_path / "alice.key"
    assert main(["keygen", "alice", "--out", str(private)]) == 0
    public = load_signer(str(private)).public_line()  # type: ignore[union-attr]
    settings = Settings("127.0.0.1", broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5)
    link = make_link(
        key=device_keys(public, BOB.public_line()), handlers={"status": lambda a, p: {"up": 1}}, settings=settings
    )
    link.start()
    wait_for(lambda: link.connected, 10, "connection")
    time.sleep(0.2)
    capsys.readouterr()
    common = ["--broker", f"mqtt://127.0.0.1:{broker.port}", "--wait", "10"]
    assert main(["send", "dev1", "status", "--key-file", str(private)] + common) == 0
    assert capsys.readouterr().out.strip() == 'ok  {"up": 1}'
    assert main(["send", "dev1", "status", "--key-file", str(tmp_path / "alice.key.pub"), "--json"] + common) == 2
    assert "cannot sign" in capsys.readouterr().err
