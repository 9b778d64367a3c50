"""The unit's own console accounts (`vigil console-user`): every change audited before it is
made, the list MACed under a KEK-derived key, picked up by a running console without a restart,
and refused once edited on the card."""

from __future__ import annotations

import getpass
import io
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from firmware.cli import main as cli_main
from firmware.cli.cmd_console import cmd_console_user
from firmware.console import accounts
from storage import MemoryKeySource
from tests.kit import open_store
from tests.test_console_session import HASH, PASSWORD, Rig


def _run(tmp_path: Path, ks: MemoryKeySource, *argv: str, stdin: str = "") -> tuple[int, str]:
    settings = SimpleNamespace(unit=SimpleNamespace(resolved_state_dir=lambda: tmp_path))

    def settings_and_store(_config: Path | None) -> tuple[Any, Any]:
        return settings, open_store(tmp_path / "vigil.db", ks)

    args = cli_main.build_parser().parse_args(["console-user", *argv])
    out, err = io.StringIO(), io.StringIO()
    rc = cmd_console_user(args, settings_and_store, io.StringIO(stdin), out, err)
    return rc, out.getvalue() + err.getvalue()


def test_add_list_remove_each_audited_and_short_passwords_refused(tmp_path: Path) -> None:
    ks = MemoryKeySource(random.Random(5).randbytes(32))
    rc, text = _run(tmp_path, ks, "add", "lena", "--role", "investigator", stdin="short\n")
    assert rc == 1 and "at least 12 characters" in text
    assert not (tmp_path / accounts.LOCAL_FILE).exists()
    assert _run(tmp_path, ks, "add", "lena", "--role", "investigator",
                stdin="lena's long pass\n")[0] == 0
    assert _run(tmp_path, ks, "add", "otto", "--role", "technician",
                stdin="otto's long pass\n")[0] == 0
    path = tmp_path / accounts.LOCAL_FILE
    assert path.stat().st_mode & 0o077 == 0
    assert _run(tmp_path, ks, "list") == (0, "lena investigator\notto technician\n")
    assert _run(tmp_path, ks, "remove", "otto")[0] == 0
    assert _run(tmp_path, ks, "remove", "nobody")[0] == 1
    with open_store(tmp_path / "vigil.db", ks) as store:
        listed = accounts.parse_local_accounts(
            path.read_bytes(), store.derive_key(accounts.LOCAL_KEY_PURPOSE))
        changes = [(e.actor, e.role, e.action, e.detail["name"], e.detail["version"])
                   for e in store.audit_entries() if e.action.startswith("console.account_")]
    assert listed.version == 3 and list(listed.accounts) == ["lena"]
    me = f"cli:{getpass.getuser()}"
    assert changes == [(me, "admin", "console.account_added", "lena", 1),
                       (me, "admin", "console.account_added", "otto", 2),
                       (me, "admin", "console.account_removed", "otto", 3)]
    assert "long pass" not in str(changes)


def test_a_running_console_picks_up_the_units_own_list_and_refuses_it_once_edited(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path).start()
    try:
        key = rig.store.derive_key(accounts.LOCAL_KEY_PURPOSE)
        local = tmp_path / accounts.LOCAL_FILE
        local.write_bytes(accounts.seal_local_accounts(
            key, 1, [("lena", "investigator", HASH)], rig.clock.utcnow()))
        rig.term.send(f"lena\r{PASSWORD}\r")
        assert b"Logged in as lena (investigator)" in rig.term.expect("vigil> ")  # no restart
        rig.term.send("logout\r")
        rig.term.expect("login: ")
        # Someone with the card, but not the KEK, makes lena an admin: the list is refused.
        local.write_bytes(local.read_bytes().replace(b"lena investigator", b"lena admin"))
        rig.term.send("lena\r")
        rig.term.expect("password: ")
        rig.term.send(PASSWORD + "\r")
        assert b"Login incorrect" in rig.term.expect("login: ")
        status = rig.console.status().as_dict()
        assert "local: local account list MAC does not verify" in status["accounts_error"]
        assert status["accounts"] == 3  # the signed list still holds
        assert b"Logged in as ivy" in rig.login()
    finally:
        rig.close()


def test_a_new_list_after_a_damaged_one_was_deleted_is_still_above_the_floor(
        tmp_path: Path) -> None:
    ks = MemoryKeySource(random.Random(6).randbytes(32))
    for name in ("lena", "otto"):
        assert _run(tmp_path, ks, "add", name, "--role", "technician",
                    stdin=f"{name}'s long pass\n")[0] == 0
    with open_store(tmp_path / "vigil.db", ks) as store:
        store.version_floors().raise_to(accounts.FLOOR_PREFIX + "local", 2)  # the console saw v2
    path = tmp_path / accounts.LOCAL_FILE
    path.write_bytes(path.read_bytes()[:-5])  # damaged
    rc, text = _run(tmp_path, ks, "list")
    assert rc == 1 and "not" in text
    path.unlink()
    assert _run(tmp_path, ks, "add", "lena", "--role", "technician",
                stdin="lena's long pass\n")[0] == 0
    with open_store(tmp_path / "vigil.db", ks) as store:
        listed = accounts.parse_local_accounts(
            path.read_bytes(), store.derive_key(accounts.LOCAL_KEY_PURPOSE))
    assert listed.version == 3
