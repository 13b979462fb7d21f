"""A device's key file: read when well formed, refused with the file named when not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shelfwise
from shelfwise.sync.protocol import Credentials

SECRET = "ab" * 32


def test_a_json_key_file_and_a_hex_line_both_give_the_device_credentials(tmp_path: Path) -> None:
    as_json = tmp_path / "kiosk-7.key"
    as_json.write_text(json.dumps({"device_id": "kiosk-7", "secret": SECRET}))
    as_line = tmp_path / "bare.key"
    as_line.write_text(SECRET + "\n")
    assert Credentials.from_file(as_json) == Credentials("kiosk-7", bytes.fromhex(SECRET))
    assert Credentials.from_file(as_line, "kiosk-8").device_id == "kiosk-8"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "holds no secret"),
        (b"{not json", "not valid JSON"),
        (b'["kiosk-7"]', "not valid JSON"),
        (b'{"device_id": "kiosk-7"}', "holds no secret"),
        (b'{"device_id": "kiosk-7", "secret": 12}', "hex"),
        (b'{"device_id": "kiosk-7", "secret": "zz"}', "hex"),
        (b'{"device_id": "kiosk-7", "secret": "abcd"}', "at least 16 bytes"),
        (b'{"device_id": "kiosk 7", "secret": "' + SECRET.encode() + b'"}', "device id"),
        (b'{"device_id": 7, "secret": "' + SECRET.encode() + b'"}', "device id"),
        (b'{"secret": "' + SECRET.encode() + b'"}', "names no device"),
        (b"\xff\xfe\x00binary", "UTF-8"),
    ],
)
def test_a_malformed_key_file_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    key = tmp_path / "kiosk-7.key"
    key.write_bytes(content)
    with pytest.raises(shelfwise.InvalidInput) as refused:
        Credentials.from_file(key)
    assert str(key) in str(refused.value)
    assert problem in str(refused.value)
    assert SECRET not in str(refused.value)  # the message never repeats a secret


def test_a_missing_key_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.key"
    with pytest.raises(shelfwise.InvalidInput, match="no such file") as refused:
        Credentials.from_file(missing)
    assert str(missing) in str(refused.value)


def test_a_folder_given_as_the_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(shelfwise.InvalidInput, match="folder"):
        Credentials.from_file(tmp_path)


def test_an_unreadable_key_file_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "kiosk-7.key"
    key.write_text(SECRET)

    def denied(self: Path) -> bytes:  # as the OS answers a file we may not read
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(
        shelfwise.InvalidInput, match=r"cannot be read \(Permission denied\)"
    ) as refused:
        Credentials.from_file(key)
    assert str(key) in str(refused.value)
