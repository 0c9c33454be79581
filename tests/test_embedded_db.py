import json
import os

from sigora.embedded_db import _repair_handles


def test_an_unreadable_handle_list_is_started_afresh(tmp_path):
    handles = tmp_path / ".handle_pids.json"
    handles.write_text("")  # what a process killed while rewriting it leaves behind
    _repair_handles(handles)
    assert json.loads(handles.read_text()) == []


def test_dead_processes_are_dropped_and_live_ones_kept(tmp_path):
    handles = tmp_path / ".handle_pids.json"
    dead = 2**22 + 12345  # above Linux's pid_max default: never a live process
    handles.write_text(json.dumps([os.getpid(), dead]))
    _repair_handles(handles)
    assert json.loads(handles.read_text()) == [os.getpid()]


def test_a_missing_list_is_left_for_the_server_to_create(tmp_path):
    _repair_handles(tmp_path / ".handle_pids.json")
    assert not (tmp_path / ".handle_pids.json").exists()
