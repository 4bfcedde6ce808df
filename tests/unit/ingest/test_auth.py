"""API keys (hashing, configuration, constant-time comparison over every entry), bearer parsing,
HMAC signatures and their freshness window, and the `leadflow keys` commands."""
from __future__ import annotations

import hashlib
import hmac as hmac_module

import pytest
from click.testing import CliRunner

from services.common.config import ConfigError
from services.ingest import auth
from services.ingest.auth import (
    ApiKeys, Authenticator, bearer_token, hash_key, new_key, sign, signature_headers, signature_valid,
)
from services.ingest.commands import keys as keys_command

NOW = 1_800_000_000.0
BODY = b'{"event_id":"e1"}'


def test_hash_key_is_sha256_hex_of_the_utf8_key():
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_key("schlüssel") == hashlib.sha256("schlüssel".encode()).hexdigest()


def test_new_keys_are_random_and_long():
    a, b = new_key(), new_key()
    assert a != b and len(a) >= 40 and a.startswith("lf_")


def test_parse_keys_with_whitespace_and_several_keys_per_source():
    spec = f" website:{hash_key('k1')} , hubspot:{hash_key('k2').upper()},website:{hash_key('k3')},"
    keys = ApiKeys.parse(spec)
    assert keys.enabled
    assert keys.sources == {"website", "hubspot"}
    assert keys.source_of("k1") == "website"
    assert keys.source_of("k2") == "hubspot"
    assert keys.source_of("k3") == "website"
    assert keys.source_of("k4") is None
    assert keys.source_of(None) is None
    assert keys.source_of("") is None


def test_no_keys_means_open():
    assert not ApiKeys.parse("").enabled
    assert Authenticator(ApiKeys.parse("")).open
    assert Authenticator(ApiKeys.parse("")).key_source({}) == (True, None)


@pytest.mark.parametrize("spec, words", [
    ("website", "entry 1 must be 'source:sha256hex'"),
    ("website:plain-secret-key", "must hold the 64-hex-digit SHA-256 of the key"),
    (f"website:{hash_key('a')},:{hash_key('b')}", "entry 2"),
    (f"web site:{hash_key('a')}", "entry 1"),
    (f"website:{hash_key('a')[:-1]}", "64-hex-digit"),
])
def test_bad_key_configuration_names_the_variable_and_entry_but_never_the_value(spec, words):
    with pytest.raises(ConfigError) as info:
        ApiKeys.parse(spec)
    message = str(info.value)
    assert "LEADFLOW_INGEST_API_KEYS" in message and words in message
    assert "plain-secret-key" not in message and hash_key("a") not in message


def test_every_entry_is_compared_even_after_a_match(monkeypatch):
    calls = []
    real = hmac_module.compare_digest

    def counting(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    keys = ApiKeys.parse(",".join(f"s{i}:{hash_key(f'k{i}')}" for i in range(5)))
    assert keys.source_of("k0") == "s0"
    assert len(calls) == 5
    calls.clear()
    assert keys.source_of("nope") is None
    assert len(calls) == 5


@pytest.mark.parametrize("header, token", [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER  abc ", "abc"), ("Bearer", None),
    ("Basic abc", None), ("", None), (None, None), ("abc", None),
])
def test_bearer_token(header, token):
    assert bearer_token(header) == token


def test_authenticator_returns_the_key_source():
    a = Authenticator(ApiKeys.parse(f"website:{hash_key('k1')}"))
    assert a.key_source({"Authorization": "Bearer k1"}) == (True, "website")
    assert a.key_source({"Authorization": "Bearer k2"}) == (False, None)
    assert a.key_source({}) == (False, None)


# --- signatures -----------------------------------------------------------------------------------

def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac_module.new(b"secret", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sign("secret", 1800000000, BODY) == f"sha256={expected}"
    headers = signature_headers("secret", BODY, NOW + 0.9)
    assert headers == {"X-Leadflow-Timestamp": "1800000000", "X-Leadflow-Signature": f"sha256={expected}"}


def test_a_correct_fresh_signature_is_valid():
    assert signature_valid("secret", "1800000000", sign("secret", 1800000000, BODY), BODY, NOW)
    assert signature_valid("secret", "1800000000", sign("secret", 1800000000, BODY).upper().replace("SHA256=", "sha256="),
                           BODY, NOW)


@pytest.mark.parametrize("age", [-300, -1, 0, 1, 299, 300])
def test_signatures_within_five_minutes_either_way_are_fresh(age):
    ts = int(NOW) - age
    assert signature_valid("secret", str(ts), sign("secret", ts, BODY), BODY, NOW)


@pytest.mark.parametrize("age", [301, 3600, -301, -86400])
def test_signatures_older_or_further_ahead_than_five_minutes_are_refused(age):
    ts = int(NOW) - age
    assert not signature_valid("secret", str(ts), sign("secret", ts, BODY), BODY, NOW)


@pytest.mark.parametrize("timestamp, signature, body", [
    ("1800000000", sign("other", 1800000000, BODY), BODY),          # wrong secret
    ("1800000000", sign("secret", 1800000000, BODY), BODY + b" "),  # body changed
    ("1800000001", sign("secret", 1800000000, BODY), BODY),         # timestamp changed
    (None, sign("secret", 1800000000, BODY), BODY),
    ("1800000000", None, BODY),
    ("1800000000.5", sign("secret", "1800000000.5", BODY), BODY),   # not whole seconds
    ("-1", sign("secret", -1, BODY), BODY),
    ("1800000000", sign("secret", 1800000000, BODY)[7:], BODY),     # no sha256= prefix
    ("1800000000", "sha256=" + "zz" * 32, BODY),
    ("1800000000", "sha256=" + "ab" * 31, BODY),
    ("1800000000", "sha1=" + "ab" * 32, BODY),
])
def test_bad_signatures_are_refused(timestamp, signature, body):
    assert not signature_valid("secret", timestamp, signature, body, NOW)


def test_authenticator_body_check_only_with_a_secret():
    assert Authenticator().body_allowed({}, BODY, NOW)
    a = Authenticator(hmac_secret="secret")
    assert not a.body_allowed({}, BODY, NOW)
    assert a.body_allowed(signature_headers("secret", BODY, NOW), BODY, NOW)


# --- leadflow keys --------------------------------------------------------------------------------

def test_keys_hash_command():
    runner = CliRunner()
    result = runner.invoke(keys_command, ["hash", "my-key"])
    assert result.exit_code == 0 and result.output.strip() == hash_key("my-key")
    result = runner.invoke(keys_command, ["hash", "--source", "website", "-"], input="my-key\n")
    assert result.exit_code == 0 and result.output.strip() == f"website:{hash_key('my-key')}"


def test_keys_new_prints_a_key_and_a_working_entry():
    result = CliRunner().invoke(keys_command, ["new", "hubspot"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    key = lines[0].rsplit(" ", 1)[1]
    entry = lines[1].rsplit(" ", 1)[1]
    assert ApiKeys.parse(entry).source_of(key) == "hubspot"


def test_keys_new_refuses_a_bad_source():
    result = CliRunner().invoke(keys_command, ["new", "bad source"])
    assert result.exit_code != 0 and "SOURCE" in result.output
