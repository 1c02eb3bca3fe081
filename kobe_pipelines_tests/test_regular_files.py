"""kobe_pipelines/regular_files.py: only regular files are read or appended to, and nothing blocks."""

from __future__ import annotations

import os
import re

import pytest

from kobe_pipelines.errors import StateFileError
from kobe_pipelines.regular_files import NotRegularFileError, open_regular, read_regular, regular_stat, version_of
from kobe_pipelines_tests.support.hostile_files import NOT_REGULAR, WORDS, place


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_read_regular_when_path_is_not_a_regular_file_then_refuses_naming_path_and_kind(tmp_path, kind):
    path = tmp_path / "KILL_SWITCH"
    place(kind, path, b'{"reason": "r", "engaged_at": "t", "engaged_by": "b"}')
    with pytest.raises(NotRegularFileError) as caught:
        read_regular(path)
    assert str(path) in str(caught.value) and WORDS[kind] in str(caught.value)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_open_regular_when_appending_to_a_non_regular_path_then_refuses_and_writes_nothing(tmp_path, kind):
    path = tmp_path / "halt_log.jsonl"
    place(kind, path, b"")
    with pytest.raises(NotRegularFileError, match=re.escape(WORDS[kind])):
        open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    if kind == "symlink to a valid file":
        assert (tmp_path / "halt_log.jsonl.link-target").read_bytes() == b""  # the link was not followed
    if kind == "dangling symlink":
        assert not (tmp_path / "halt_log.jsonl.missing-target").exists()  # nothing created through the link


def test_read_regular_when_regular_file_then_returns_its_bytes_and_a_version_that_changes_on_rewrite(tmp_path):
    path = tmp_path / "high_water_mark.json"
    path.write_bytes(b"one")
    first = read_regular(path)
    assert first.data == b"one" and first.version == version_of(path)
    path.write_bytes(b"three")  # same inode, new size
    assert read_regular(path).version != first.version


def test_read_regular_when_nothing_at_path_then_none(tmp_path):
    assert read_regular(tmp_path / "absent") is None and version_of(tmp_path / "absent") is None


def test_read_regular_when_larger_than_the_limit_then_refuses(tmp_path):
    path = tmp_path / "KILL_SWITCH"
    path.write_bytes(b"x" * 11)
    with pytest.raises(StateFileError, match="is 11 bytes, more than the 10"):
        read_regular(path, max_bytes=10)


def test_regular_stat_when_a_parent_is_a_file_then_state_file_error_not_os_error(tmp_path):
    (tmp_path / "state").write_text("not a folder")
    with pytest.raises(StateFileError, match="cannot be examined"):
        regular_stat(tmp_path / "state" / "KILL_SWITCH")
