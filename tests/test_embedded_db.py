"""The embedded PostgreSQL: the URL that hands it to another process, and its handle list."""

import json
import os

import dj_database_url
from hypothesis import given
from hypothesis import strategies as st

from sigora.embedded_db import _repair_handles, database_url

# --- database_url: what a child process is handed --------------------------------------------


def parsed_back(settings: dict) -> tuple:
    parsed = dj_database_url.parse(database_url(settings))
    return parsed["HOST"], str(parsed["PORT"]), parsed["NAME"], parsed["USER"], parsed["PASSWORD"]


def test_the_embedded_servers_socket_directory_is_the_host_of_the_url():
    settings = {"NAME": "test_sigora", "USER": "postgres", "HOST": "/work/Main Checkout/.pgdata", "PORT": ""}
    assert parsed_back(settings) == ("/work/Main Checkout/.pgdata", "", "test_sigora", "postgres", "")


def test_a_tcp_server_keeps_its_host_and_port():
    settings = {"NAME": "sigora_ci", "USER": "postgres", "PASSWORD": "p@ss:/word", "HOST": "127.0.0.1", "PORT": 5432}
    assert database_url(settings) == "postgres://postgres:p%40ss%3A%2Fword@127.0.0.1:5432/sigora_ci"
    assert parsed_back(settings) == ("127.0.0.1", "5432", "sigora_ci", "postgres", "p@ss:/word")


text = st.text(st.characters(exclude_categories=("Cs",)))


@given(
    host=text,
    port=st.one_of(st.just(""), st.integers(1, 65535).map(str)),
    name=text.filter(bool),
    user=text,
    password=text,
)
def test_any_settings_parse_back_from_their_url(host, port, name, user, password):
    settings = {"NAME": name, "USER": user, "PASSWORD": password, "HOST": host, "PORT": port}
    assert parsed_back(settings) == (host, port, name, user, password)


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
