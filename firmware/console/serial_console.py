"""The technician's serial console: login, a small audited command table, nothing else.

Three layers, outermost last:

* :class:`LineEditor` turns raw serial bytes into lines the way a terminal user expects (the
  far end does not echo locally, so we echo; backspace, Ctrl-C, Ctrl-U, Ctrl-D; CR, LF or
  CR LF) and caps the line length. Pure.
* :class:`ConsoleSession` is the login/shell state machine. It takes lines and clock ticks and
  returns the text to send; it talks to the store and the daemon only through the services it is
  given, and every failure inside a command becomes an error line.
* :class:`Console` is the supervised worker: ``run(stop_event)`` opens the port through the
  injected factory and pumps bytes between the port and the session until the event is set.

Security rules kept here: nothing is reachable before a login as a named person (an account from
the signed list, the installer's local account, or a vendor-signed service response); each
command is allowed to some roles only (:data:`COMMAND_ROLES`); a lockout with exponential
backoff follows ``max_failures`` bad logins and survives restarts and power cuts (the count is
saved before each password is checked); idle sessions end; every login attempt, command and
logout is audited through ``store.audit`` with the person as actor; reads are reachable only
through ``store.search_plate``, which checks the role and the case number itself, audits and
counts; images, keys and configuration changes are never offered.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shlex
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drivers import files
from drivers.clock import Clock
from drivers.config_keys import setting
from drivers.serial_port import SerialError, SerialPort, SerialWriteTimeout, open_serial
from firmware.console import auth as console_auth
from firmware.errors import FirmwareError
from storage.errors import StoreError
from storage.roles import LOGIN_NAME, RESERVED_LOGIN_NAMES, Caller, Role

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from firmware.console import accounts as console_accounts
    from storage.floors import VersionFloors

log = logging.getLogger(__name__)

#: The audit role of a login attempt by nobody yet known.
UNAUTHENTICATED = "unauthenticated"
#: The lockout's state, in the daemon's state directory.
LOCKOUT_FILE = "console-lockout.json"
#: The name typed at ``login:`` that starts the vendor-signed field-service login.
SERVICE_LOGIN = "service"
PROMPT = "vigil> "
#: Seconds one port read may block: the bound on how late ``stop_event`` is noticed.
READ_TIMEOUT_S = 0.1
#: Seconds a write may block (hardware flow control held off by a dead terminal).
WRITE_TIMEOUT_S = 2.0
MAX_SEARCH_ROWS = 50
MAX_LOG_LINES = 200

DEFAULT_BANNER = "Vigil maintenance console. Authorised use only; every action is audited."
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


class ConsoleError(FirmwareError, ConnectionError):
    """The console's serial port could not be opened or failed underneath a session."""


# ---------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ConsoleSettings:
    """Config section ``[console]``.

    ``port`` is a pyserial URL or device (``/dev/ttyAMA0``, ``/dev/ttyGS0`` for a USB gadget,
    ``loop://`` for tests). ``password_hash`` comes from ``vigil console-passwd`` or
    ``vigil provision``; it is a secret (redacted by ``vigil config show``).
    """

    enabled: bool = setting(False, doc="Run the technician console on the serial port.")
    port: str = setting("/dev/ttyAMA0", nonempty=True,
                        doc="Serial device or pyserial URL (/dev/ttyAMA0, /dev/ttyGS0, loop://).")
    baud: int = setting(115200, choices=BAUD_RATES, doc="Line speed (8N1).")
    user: str = setting("installer", nonempty=True,
                        doc="The installer's own local account (role installer): their name.")
    password_hash: str = setting("", secret=True,
                                 doc="scrypt hash from `vigil console-passwd` for `user`; "
                                 "empty = no local account.")
    accounts_file: str = setting("", doc="Signed per-person account list (docs/console.md); "
                                 "empty = none.")
    accounts_key: str = setting("", doc="Ed25519 public key (base64, or a file: PEM, raw or "
                                "base64) that signs accounts_file: the agency's or the vendor's.")
    service_key: str = setting("", doc="The vendor's Ed25519 public key for the offline "
                               "field-service login; empty = no service login.")
    idle_timeout_s: float = setting(300.0, min=10.0, max=3600.0,
                                    doc="A session with no input for this long is logged out.")
    max_failures: int = setting(5, min=1, max=20,
                                doc="Consecutive failed logins that start a lockout.")
    lockout_s: float = setting(300.0, min=1.0, max=86400.0,
                               doc="First lockout after max_failures; each further one in a "
                               "row doubles (at most 24 h).")
    max_line_bytes: int = setting(256, min=32, max=4096,
                                  doc="Longer input lines are discarded with an error.")
    banner: str = setting(DEFAULT_BANNER, doc="Shown before the login prompt.")
    echo: bool = setting(True, doc="Echo typed characters (terminals do not echo locally); "
                         "passwords are never echoed.")


def check_settings(s: ConsoleSettings) -> str | None:
    """Cross-field rules of ``[console]``: a message, or ``None`` when the settings hold."""
    if s.password_hash:
        try:
            params = console_auth.parse_hash(s.password_hash).params
        except console_auth.PasswordHashError as e:
            return f"password_hash: {e}"
        if not params.meets_policy():
            return ("password_hash: scrypt parameters below OWASP's (make it again with "
                    "`vigil console-passwd`)")
    elif s.enabled and not s.accounts_file and not s.service_key:
        return ("enabled = true needs a login: accounts_file, password_hash "
                "(see `vigil console-passwd`) or service_key")
    if s.accounts_file and not s.accounts_key:
        return "accounts_file needs accounts_key (the key that signs it)"
    for name in ("accounts_key", "service_key"):
        if getattr(s, name):
            from firmware.console import accounts as console_accounts

            try:
                console_accounts.load_public_key(getattr(s, name))
            except console_accounts.AccountError as e:
                return f"{name}: {e}"
    if not LOGIN_NAME.fullmatch(s.user) or s.user in RESERVED_LOGIN_NAMES:
        return "user must be a person's login name (a-z first, then a-z 0-9 . _ -; 2-32)"
    if any(unicodedata.category(ch) == "Cc" for ch in s.banner):
        return "banner must not contain control characters"
    return None


# ---------------------------------------------------------------------------------- line editor


@dataclass(frozen=True)
class Line:
    """One line as typed. ``overflow``: it was longer than allowed and ``data`` is cut."""

    data: bytes
    overflow: bool = False


@dataclass(frozen=True)
class Interrupt:
    """Ctrl-C or Ctrl-U: the line being typed is abandoned."""


@dataclass(frozen=True)
class EndOfInput:
    """Ctrl-D on an empty line."""


InputEvent = Line | Interrupt | EndOfInput

_BS, _DEL, _CR, _LF, _NUL = 0x08, 0x7F, 0x0D, 0x0A, 0x00
_CTRL_C, _CTRL_D, _CTRL_U, _TAB = 0x03, 0x04, 0x15, 0x09


class LineEditor:
    """Byte-at-a-time line assembly with terminal-style echo. No I/O.

    ``push`` is called per byte so that the echo decision can change between two lines that
    arrived in one read (a user name and a password typed ahead must not echo the password).
    """

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        self._overflow = False
        self._after_cr = False

    def push(self, byte: int, echo: bool) -> tuple[bytes, InputEvent | None]:
        after_cr, self._after_cr = self._after_cr, False
        if byte in (_LF, _NUL) and after_cr:
            return b"", None  # the second half of CR LF / CR NUL
        if byte in (_CR, _LF):
            self._after_cr = byte == _CR
            line = Line(bytes(self._buf), self._overflow)
            self._reset()
            return b"\r\n", line
        if byte in (_CTRL_C, _CTRL_U):
            self._reset()
            return b"^C\r\n" if byte == _CTRL_C else b"\r\n", Interrupt()
        if byte == _CTRL_D:
            return (b"\r\n", EndOfInput()) if not self._buf and not self._overflow else (b"", None)
        if byte in (_BS, _DEL):
            return self._backspace(echo), None
        if byte == _TAB:
            byte = 0x20  # pasted text often carries tabs; they are spaces to the parser
        if len(self._buf) >= self.max_line_bytes:
            self._overflow = True
            return b"", None
        self._buf.append(byte)
        if echo and (0x20 <= byte < 0x7F or byte >= 0x80):
            return bytes([byte]), None
        return b"", None

    def _backspace(self, echo: bool) -> bytes:
        if not self._buf or self._overflow:
            return b""
        # Drop one whole UTF-8 character: continuation bytes, then the lead byte.
        while self._buf and 0x80 <= self._buf[-1] < 0xC0:
            self._buf.pop()
        if self._buf:
            self._buf.pop()
        return b"\b \b" if echo else b""

    def _reset(self) -> None:
        self._buf.clear()
        self._overflow = False


# ---------------------------------------------------------------------------------- parsing


class InputRejected(FirmwareError, ValueError):
    """A line that is not acceptable input; the message is safe to show and to log."""


def decode_line(line: Line, max_line_bytes: int) -> str:
    """The line as text, or :class:`InputRejected` saying what is wrong with it."""
    if line.overflow:
        raise InputRejected(f"line too long (max {max_line_bytes} bytes); discarded")
    try:
        text = line.data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputRejected("input is not valid UTF-8; discarded") from None
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text):
        raise InputRejected("control characters are not allowed; discarded")
    return text.strip()


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]
    options: Mapping[str, str]


def parse_command(text: str) -> Command:
    """Shell-like words; ``key=value`` words (quotes allowed around the value) are options."""
    try:
        words = shlex.split(text, posix=True)
    except ValueError as e:
        raise InputRejected(f"malformed quoting: {e}") from None
    if not words:
        raise InputRejected("empty command")
    args: list[str] = []
    options: dict[str, str] = {}
    for w in words[1:]:
        key, sep, value = w.partition("=")
        if sep and key.isidentifier():
            if key in options:
                raise InputRejected(f"option {key}= given twice")
            options[key] = value
        else:
            args.append(w)
    return Command(words[0].lower(), tuple(args), options)


def printable(text: str) -> str:
    """Text safe to put on a terminal: control characters (escape sequences) are replaced."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


# ---------------------------------------------------------------------------------- services


class ConsoleStore(Protocol):
    """What the console uses of :class:`storage.store.Store`."""

    def audit(self, actor: str, role: str, action: str, reason: str, result: str,
              detail: dict[str, Any] | None = None) -> Any: ...

    def search_plate(self, text: str, caller: Caller) -> Sequence[Any]: ...

    def verify_audit(self) -> Any: ...

    def stats(self, window_days: int = 30) -> Mapping[str, Any]: ...

    def outbox_depth(self) -> Mapping[str, int]: ...

    def version_floors(self) -> VersionFloors: ...

    def derive_key(self, purpose: str) -> bytes: ...


StatusFn = Callable[[], Mapping[str, Any]]
LogsFn = Callable[[int], Sequence[str]]


@dataclass
class CommandResult:
    lines: list[str]
    result: str = "ok"  # audit result: ok, error, usage, denied
    detail: dict[str, Any] = field(default_factory=dict)


class UsageError(FirmwareError, ValueError):
    """A command was called with the wrong arguments; the message is the usage line."""


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    help: str
    handler: Callable[[ConsoleSession, Command], CommandResult]
    #: The store writes this command's audit entry itself (atomically with the data access).
    audited_by_store: bool = False
    #: Who may run it (the store checks data access again by itself).
    roles: tuple[Role, ...] = tuple(Role)


#: Roles allowed read-data commands at the console; the store still checks ``search_roles``.
DATA_COMMAND_ROLES = (Role.INVESTIGATOR, Role.ADMIN)


# ---------------------------------------------------------------------------------- session


class State(StrEnum):
    LOGIN = "login"
    PASSWORD = "password"
    SERVICE = "service"  # a field-service challenge is shown; the signed response is awaited
    SHELL = "shell"


class ConsoleSession:
    """Login and shell state machine for one serial port. Returns text; does no port I/O.

    ``throttle`` is owned by the :class:`Console` so that it outlives sessions. ``accounts_fn``
    gives the people who may log in with a password from the account lists (asked at each
    login, so a changed list applies without a restart); the installer's account from
    ``[console] user`` / ``password_hash`` is added to them. ``service_key`` verifies
    vendor-signed field-service responses.
    """

    def __init__(
        self,
        settings: ConsoleSettings,
        store: ConsoleStore,
        status_fn: StatusFn,
        clock: Clock,
        throttle: console_auth.LoginThrottle,
        logs_fn: LogsFn | None = None,
        accounts_fn: Callable[[], Mapping[str, console_accounts.Account]] | None = None,
        service_key: Ed25519PublicKey | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.status_fn = status_fn
        self.logs_fn = logs_fn
        self.clock = clock
        self.throttle = throttle
        self.state = State.LOGIN
        self._attempted_user = ""
        self._challenge: str | None = None
        self._last_activity = clock.monotonic()
        self._login_at: str | None = None
        self._audit_ok = True
        self.person: str | None = None
        self.role: Role | None = None
        self.service_key = service_key
        self._accounts_fn = accounts_fn
        self._installer: console_accounts.Account | None = None
        if settings.password_hash:
            # Imported only where a console runs: the daemon without one does not pay for it.
            from firmware.console import accounts as console_accounts

            try:
                local = console_auth.parse_hash(settings.password_hash)
                self._installer = console_accounts.Account(settings.user, Role.INSTALLER, local)
            except console_auth.PasswordHashError:
                # Config validation rejects this; a hand-built settings object may still carry it.
                log.error("console password hash unusable: the local account cannot log in")
        self.commands = self._command_table()

    def accounts(self) -> dict[str, console_accounts.Account]:
        """Everyone who may log in with a password now (a listed name wins over the
        installer's config account of the same name)."""
        found = dict(self._accounts_fn()) if self._accounts_fn is not None else {}
        if self._installer is not None:
            found.setdefault(self._installer.name, self._installer)
        return found

    # ---- state ---------------------------------------------------------------------------
    @property
    def echo(self) -> bool:
        return self.settings.echo and self.state is not State.PASSWORD

    @property
    def logged_in(self) -> bool:
        return self.state is State.SHELL

    @property
    def actor(self) -> str:
        return f"console:{self.person}" if self.person else "console:unknown"

    def greet(self) -> str:
        return f"\r\n{self.settings.banner}\r\n\r\nlogin: "

    def prompt(self) -> str:
        return {State.LOGIN: "login: ", State.PASSWORD: "password: ",
                State.SERVICE: "response: ", State.SHELL: PROMPT}[self.state]

    # ---- events --------------------------------------------------------------------------
    def handle(self, event: InputEvent) -> str:
        self._last_activity = self.clock.monotonic()
        if isinstance(event, Interrupt):
            if self.state in (State.PASSWORD, State.SERVICE):
                self.state = State.LOGIN
            return self.prompt()
        if isinstance(event, EndOfInput):
            if self.state is State.SHELL:
                return self.logout("end of input")
            self.state = State.LOGIN
            return self.prompt()
        if self.state is State.PASSWORD:
            return self._on_password(event)
        try:
            text = decode_line(event, self.settings.max_line_bytes)
        except InputRejected as e:
            if self.state is State.SERVICE:
                return self._on_service(None)
            return self._reject_input(str(e))
        if self.state is State.LOGIN:
            return self._on_user(text)
        if self.state is State.SERVICE:
            return self._on_service(text)
        return self._on_command(text)

    def tick(self) -> str:
        """Called on every loop turn: ends idle sessions and abandoned password prompts."""
        if self.state is State.LOGIN:
            return ""
        idle = self.clock.monotonic() - self._last_activity
        if idle < self.settings.idle_timeout_s:
            return ""
        if self.state in (State.PASSWORD, State.SERVICE):
            self.state = State.LOGIN
            self._challenge = None
            return "\r\ntimed out\r\n" + self.greet()
        log.info("console idle timeout", extra={"idle_s": round(idle, 1)})
        return "\r\nidle timeout: " + self.logout("idle timeout")

    def logout(self, why: str) -> str:
        """End the shell session (audited); returns the text that closes it and greets again."""
        if self.state is State.SHELL:
            self._audit("console.logout", why, "ok", {"since": self._login_at})
            log.info("console logout", extra={"user": self.person, "why": why})
        self.state = State.LOGIN
        self._login_at = None
        self.person = None
        self.role = None
        return "logged out\r\n" + self.greet()

    # ---- login ---------------------------------------------------------------------------
    def _locked_message(self) -> str | None:
        left = self.throttle.locked_for(self.clock.monotonic())
        if left <= 0:
            return None
        return (f"console locked after {self.throttle.max_failures} failed logins; "
                f"try again in {math.ceil(left)} s\r\n")

    def _on_user(self, text: str) -> str:
        if not text:
            return self.prompt()
        locked = self._locked_message()
        if locked is not None:
            return locked + self.prompt()
        if text == SERVICE_LOGIN and self.service_key is not None:
            from firmware.console import accounts as console_accounts

            unit = str(self.status_fn().get("camera_id") or "unit")
            self._challenge = console_accounts.new_challenge(unit)
            self.state = State.SERVICE
            return (f"challenge: {self._challenge}\r\n"
                    "(have the vendor sign it: vigil console-service-sign)\r\n" + self.prompt())
        self._attempted_user = text
        self.state = State.PASSWORD
        return self.prompt()

    def _on_password(self, line: Line) -> str:
        user, self._attempted_user = self._attempted_user, ""
        self.state = State.LOGIN
        accounts = self.accounts()
        account = accounts.get(user)
        self.throttle.begin_attempt()  # saved before the check: a power cut does not undo it
        ok = False
        if line.overflow or account is None:
            # The same cost as a real check, at a real account's parameters.
            some = account or next(iter(accounts.values()), None)
            console_auth.burn_one_attempt(some.password if some is not None else None)
        else:
            password = line.data.decode("utf-8", "surrogateescape")
            ok = console_auth.verify_password(password, account.password)
            del password
        if ok and account is not None:
            return self._logged_in(account.name, account.role, "password")
        # Only a name that is an account goes into the audit chain: a password typed into the
        # login field by mistake must not be written down.
        return self._login_failed(f"console:{user}" if account is not None else None,
                                  {"user_known": account is not None}, "password")

    def _on_service(self, text: str | None) -> str:
        from firmware.console import accounts as console_accounts

        challenge, self._challenge = self._challenge, None
        self.state = State.LOGIN
        self.throttle.begin_attempt()
        try:
            if challenge is None or text is None or self.service_key is None:
                raise console_accounts.AccountError("malformed response")
            name, role = console_accounts.verify_service_response(
                challenge, text, self.service_key)
        except console_accounts.AccountError as e:
            return self._login_failed(None, {"why": str(e)}, "service")
        return self._logged_in(name, role, "service")

    def _logged_in(self, name: str, role: Role, method: str) -> str:
        self.throttle.record_success()
        self.state = State.SHELL
        self.person, self.role = name, role
        self._login_at = self.clock.utcnow().isoformat()
        self._audit_ok = True
        self._audit("console.login", method, "ok", {})
        log.info("console login", extra={"user": name, "role": role.value, "method": method})
        warn = ("WARNING: the audit log cannot be written; data commands will be refused.\r\n"
                if not self._audit_ok else "")
        return (f"{warn}Logged in as {name} ({role.value}). "
                f"Type 'help' for commands.\r\n{PROMPT}")

    def _login_failed(self, actor: str | None, detail: dict[str, Any], method: str) -> str:
        locked = self.throttle.record_failure(self.clock.monotonic(), self.clock.utcnow())
        actor = actor or "console:unknown"
        failures = self.throttle.failures
        self._audit("console.login", method, "failed",
                    {**detail, "consecutive_failures": failures}, actor=actor)
        log.warning("console login failed", extra={"method": method,
                                                   "consecutive_failures": failures})
        out = "Login incorrect\r\n"
        if locked:
            lockout_s = self.throttle.current_lockout_s()
            self._audit("console.lockout", "too many failed logins", "locked",
                        {"lockout_s": lockout_s, "lockouts_in_a_row": self.throttle.lockouts},
                        actor=actor)
            log.warning("console locked", extra={"lockout_s": lockout_s})
            out += (f"console locked after {self.throttle.max_failures} failed logins; "
                    f"try again in {math.ceil(lockout_s)} s\r\n")
        return out + self.prompt()

    # ---- shell ---------------------------------------------------------------------------
    def _reject_input(self, why: str) -> str:
        log.info("console input rejected", extra={"why": why, "state": self.state.value})
        if self.state is State.SHELL:
            self._audit("console.command", "", "rejected", {"why": why})
        return f"error: {why}\r\n{self.prompt()}"

    def _on_command(self, text: str) -> str:
        if not text:
            return PROMPT
        try:
            cmd = parse_command(text)
        except InputRejected as e:
            return self._reject_input(str(e))
        spec = self.commands.get(cmd.name)
        if spec is None:
            # The typed word is not logged or audited: it could be a password typed blind.
            self._audit("console.command", "", "unknown", {"length": len(text)})
            log.info("console: unknown command", extra={"length": len(text)})
            return f"error: unknown command (type 'help')\r\n{PROMPT}"
        if cmd.name == "logout" or cmd.name in ("exit", "quit"):
            return self.logout("user")
        if self.role not in spec.roles:
            self._audit("console.command", "", "denied",
                        {"command": spec.name, "why": "role"})
            role = self.role.value if self.role else UNAUTHENTICATED
            return f"error: {spec.name} is not allowed for role {role}\r\n{PROMPT}"
        try:
            res = spec.handler(self, cmd)
        except UsageError as e:
            res = CommandResult([f"usage: {e}"], "usage")
        except Exception as e:  # a failing command must not end the console
            log.exception("console command failed", extra={"command": spec.name})
            res = CommandResult([f"error: {spec.name} failed: {type(e).__name__}"], "error",
                                {"error": type(e).__name__})
        if not spec.audited_by_store or res.result == "usage":
            self._audit("console.command", cmd.options.get("reason", ""), res.result,
                        {"command": spec.name, **res.detail})
        body = "".join(printable(line) + "\r\n" for line in res.lines)
        return body + PROMPT

    def _audit(self, action: str, reason: str, result: str, detail: dict[str, Any],
               actor: str | None = None) -> bool:
        try:
            role = self.role.value if self.role is not None else UNAUTHENTICATED
            self.store.audit(actor or self.actor, role, action, reason, result, detail)
        except Exception as e:  # noqa: BLE001 - the console stays up to diagnose a sick store
            self._audit_ok = False
            log.error("console: audit write failed",
                      extra={"action": action, "error": f"{type(e).__name__}: {e}"})
            return False
        return True

    # ---- commands ------------------------------------------------------------------------
    def _command_table(self) -> dict[str, CommandSpec]:
        specs = [
            CommandSpec("help", "help", "list commands", _cmd_help),
            CommandSpec("status", "status", "health summary of the daemon", _cmd_status),
            CommandSpec("reads", 'reads search PLATE reason="case NUMBER ..."',
                        "reads of a plate (time, plate, confidence); case number required, "
                        "audited", _cmd_reads, audited_by_store=True, roles=DATA_COMMAND_ROLES),
            CommandSpec("audit", "audit verify", "verify the audit hash chain and signatures",
                        _cmd_audit),
            CommandSpec("stats", "stats [DAYS]", "transparency counters (default 30 days)",
                        _cmd_stats),
            CommandSpec("outbox", "outbox", "items waiting for the agency uplink", _cmd_outbox),
            CommandSpec("ota", "ota", "update state: slot, version, last step and outcome",
                        _cmd_ota),
            CommandSpec("whoami", "whoami", "this session", _cmd_whoami),
            CommandSpec("logout", "logout", "end the session (also: exit, quit, Ctrl-D)",
                        _cmd_help),
        ]
        if self.logs_fn is not None:
            specs.insert(6, CommandSpec("logs", "logs [N]",
                                        f"last N daemon log lines (1..{MAX_LOG_LINES}, default 20)",
                                        _cmd_logs))
        table = {s.name: s for s in specs}
        table["search"] = table["reads"]  # `search PLATE reason=...` is accepted too
        table["exit"] = table["quit"] = table["logout"]
        return table


# Handlers are module functions over the session so the table reads as one list.


def _cmd_help(s: ConsoleSession, cmd: Command) -> CommandResult:
    seen: list[CommandSpec] = []
    for spec in s.commands.values():
        if spec not in seen and s.role in spec.roles:
            seen.append(spec)
    width = max(len(spec.usage) for spec in seen)
    return CommandResult([f"  {spec.usage.ljust(width)}  {spec.help}" for spec in seen])


def _no_args(cmd: Command, usage: str) -> None:
    if cmd.args or cmd.options:
        raise UsageError(usage)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e6 else f"{value:.0f}"
    if isinstance(value, Mapping):
        return " ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(_fmt(v) for v in value)
    return str(value)


#: Status fields that identify a vehicle: the console shows them only through `reads search`,
#: which needs a reason and is audited.
_WITHHELD = ("plate", "plate_text", "read_id")


def _cmd_status(s: ConsoleSession, cmd: Command) -> CommandResult:
    _no_args(cmd, "status")
    st = dict(s.status_fn())
    lines: list[str] = []
    workers = st.pop("workers", None)
    for key, value in st.items():
        if key == "last_read" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in _WITHHELD}
        if key == "store" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k in ("ok", "used_bytes", "budget_bytes",
                                                              "over_budget", "last_error",
                                                              "recovered_from_corruption")}
        lines.append(f"{key}: {_fmt(value)}")
    if isinstance(workers, Mapping):
        lines.append("workers:")
        for name, w in workers.items():
            if isinstance(w, Mapping):
                err = f", last error: {w['last_error']}" if w.get("last_error") else ""
                lines.append(f"  {name}: {w.get('state')}, restarts {w.get('restarts', 0)}{err}")
    return CommandResult(lines)


def _cmd_reads(s: ConsoleSession, cmd: Command) -> CommandResult:
    usage = 'reads search PLATE reason="case NUMBER (why you need it)"'
    args = cmd.args
    if cmd.name == "reads":
        if not args or args[0].lower() != "search":
            raise UsageError(usage)
        args = args[1:]
    if len(args) != 1 or set(cmd.options) - {"reason"}:
        raise UsageError(usage)
    reason = cmd.options.get("reason", "")
    from storage.errors import AccessDenied

    assert s.role is not None  # commands run only in a logged-in session
    try:
        found = s.store.search_plate(args[0], Caller(s.actor, s.role, reason))
    except AccessDenied as e:
        return CommandResult([f"denied: {e} (give reason=\"case NUMBER ...\")"], "denied")
    lines = [f"{len(found)} read(s) within retention"]
    for r in list(found)[:MAX_SEARCH_ROWS]:
        lines.append(f"  {r.captured_at.isoformat(timespec='seconds')}  {r.plate_text}  "
                     f"conf {r.confidence:.2f}  {r.camera_id}  {r.direction or '-'}")
    if len(found) > MAX_SEARCH_ROWS:
        lines.append(f"  ... {len(found) - MAX_SEARCH_ROWS} more not shown")
    return CommandResult(lines)


def _cmd_audit(s: ConsoleSession, cmd: Command) -> CommandResult:
    if cmd.args != ("verify",) or cmd.options:
        raise UsageError("audit verify")
    rep = s.store.verify_audit()
    lines = [f"audit chain: {'OK' if rep.ok else 'PROBLEMS FOUND'}",
             f"entries: {rep.entries}, last seq: {rep.last_seq}, "
             f"checkpoints verified: {rep.checkpoints_verified}"]
    lines += [f"  problem: {p}" for p in list(rep.problems)[:20]]
    if len(rep.problems) > 20:
        lines.append(f"  ... {len(rep.problems) - 20} more")
    return CommandResult(lines, "ok", {"chain_ok": rep.ok, "entries": rep.entries})


def _int_arg(cmd: Command, default: int, lo: int, hi: int, usage: str) -> int:
    if cmd.options or len(cmd.args) > 1:
        raise UsageError(usage)
    if not cmd.args:
        return default
    try:
        n = int(cmd.args[0])
    except ValueError:
        raise UsageError(f"{usage}  ({lo}..{hi})") from None
    if not lo <= n <= hi:
        raise UsageError(f"{usage}  ({lo}..{hi})")
    return n


def _cmd_stats(s: ConsoleSession, cmd: Command) -> CommandResult:
    days = _int_arg(cmd, 30, 1, 3660, "stats [DAYS]")
    st = s.store.stats(days)
    return CommandResult([f"{k}: {_fmt(v)}" for k, v in st.items()])


def _cmd_outbox(s: ConsoleSession, cmd: Command) -> CommandResult:
    _no_args(cmd, "outbox")
    depth = s.store.outbox_depth()
    return CommandResult([f"{k}: {v}" for k, v in depth.items()]
                         + [f"total: {sum(depth.values())}"])


def _cmd_ota(s: ConsoleSession, cmd: Command) -> CommandResult:
    _no_args(cmd, "ota")
    ota = s.status_fn().get("ota")
    if not isinstance(ota, Mapping):
        return CommandResult(["ota: not enabled ([ota] enabled = false)"])
    return CommandResult([f"{k}: {_fmt(v)}" for k, v in ota.items()])


def _cmd_logs(s: ConsoleSession, cmd: Command) -> CommandResult:
    n = _int_arg(cmd, 20, 1, MAX_LOG_LINES, "logs [N]")
    assert s.logs_fn is not None  # the command exists only with a logs_fn
    return CommandResult(list(s.logs_fn(n))[-n:], "ok", {"lines": n})


def _cmd_whoami(s: ConsoleSession, cmd: Command) -> CommandResult:
    _no_args(cmd, "whoami")
    role = s.role.value if s.role is not None else UNAUTHENTICATED
    return CommandResult([f"user: {s.person}", f"role: {role}",
                          f"logged in at: {s._login_at}",
                          f"idle timeout: {int(s.settings.idle_timeout_s)} s"])


# ---------------------------------------------------------------------------------- worker


SerialFactory = Callable[[], SerialPort]


def serial_factory(settings: ConsoleSettings) -> SerialFactory:
    """The real port (``drivers.serial_port``): 8N1, no flow control, short read timeout."""

    def open_port() -> SerialPort:
        try:
            return open_serial(settings.port, settings.baud, read_timeout_s=READ_TIMEOUT_S,
                               write_timeout_s=WRITE_TIMEOUT_S)
        except SerialError as e:
            raise ConsoleError(f"cannot open console port {settings.port}: {e}") from e

    return open_port


@dataclass(frozen=True)
class ConsoleStatus:
    """The console as `vigil status` shows it (``as_dict()`` is the JSON view). Who is logged
    in is not shown: the audit chain says that."""

    logged_in: bool
    locked_for_s: float
    accounts: int = 0  # people who may log in with a password
    accounts_error: str | None = None  # why the signed account list was refused

    def as_dict(self) -> dict[str, Any]:
        return {"logged_in": self.logged_in, "locked_for_s": self.locked_for_s,
                "accounts": self.accounts, "accounts_error": self.accounts_error}


class ThrottleFile:
    """The lockout's state (:class:`console_auth.ThrottleState`) in a small JSON file, replaced
    atomically (temporary file, fsync, rename, fsync of the directory) on every change, so a
    restart or a power cut keeps the count. A file that does not parse (it cannot be half
    written) is treated as tampering: the console starts locked."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, now_utc: datetime, lockout_s: float) -> console_auth.ThrottleState:
        try:
            raw = json.loads(self.path.read_bytes())
            until = raw["locked_until"]
            return console_auth.ThrottleState(
                int(raw["failures"]), int(raw["lockouts"]),
                None if until is None else datetime.fromisoformat(until))
        except FileNotFoundError:
            return console_auth.ThrottleState()
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("console lockout state unreadable; starting locked",
                      extra={"path": str(self.path), "error": f"{type(e).__name__}: {e}"})
            return console_auth.ThrottleState(0, 1, now_utc + timedelta(seconds=lockout_s))

    def save(self, state: console_auth.ThrottleState) -> None:
        until = None if state.locked_until is None else state.locked_until.isoformat()
        data = json.dumps({"failures": state.failures, "lockouts": state.lockouts,
                           "locked_until": until}).encode()
        files.write_atomic(self.path, data, 0o600)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class Console:
    """The supervised console worker. Register with the supervisor as non-essential::

        console = Console(settings.console, serial_factory(settings.console), store,
                          daemon.status, clock)
        supervisor.add("console", lambda: console.run, essential=False)

    A port error raises :class:`ConsoleError` out of :meth:`run` (the supervisor restarts it
    with backoff); nothing typed on the port can make :meth:`run` raise.
    """

    def __init__(
        self,
        settings: ConsoleSettings,
        serial_factory: SerialFactory,
        store: ConsoleStore,
        status_fn: StatusFn,
        clock: Clock,
        logs_fn: LogsFn | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.serial_factory = serial_factory
        self.store = store
        self.status_fn = status_fn
        self.clock = clock
        self.logs_fn = logs_fn
        from firmware.console import accounts as console_accounts

        state, persist = console_auth.ThrottleState(), None
        self.local_accounts_path: Path | None = None
        if state_dir is not None:
            self.local_accounts_path = state_dir / console_accounts.LOCAL_FILE
            state_file = ThrottleFile(state_dir / LOCKOUT_FILE)
            state = state_file.load(clock.utcnow(), settings.lockout_s)
            persist = state_file.save
        self.throttle = console_auth.LoginThrottle(
            settings.max_failures, settings.lockout_s, state=state, persist=persist,
            now_utc=clock.utcnow(), now=clock.monotonic())
        self.session: ConsoleSession | None = None
        self.accounts: dict[str, console_accounts.Account] = {}
        self.accounts_error: str | None = None
        self._loaded_from: tuple[tuple[int, int] | None, ...] | None = None
        self.service_key: Ed25519PublicKey | None = None
        if settings.service_key:
            try:
                self.service_key = console_accounts.load_public_key(settings.service_key)
            except console_accounts.AccountError as e:  # a key file gone since config check
                log.error("console service key unusable: no service login",
                          extra={"error": str(e)})

    def status(self) -> ConsoleStatus:
        s = self.session
        return ConsoleStatus(bool(s and s.logged_in),
                             round(self.throttle.locked_for(self.clock.monotonic()), 1),
                             len(self.accounts), self.accounts_error)

    def _sources(self) -> tuple[tuple[str, Path], ...]:
        out: list[tuple[str, Path]] = []
        if self.settings.accounts_file:
            out.append(("signed", Path(self.settings.accounts_file)))
        if self.local_accounts_path is not None:
            out.append(("local", self.local_accounts_path))
        return tuple(out)

    def current_accounts(self) -> dict[str, console_accounts.Account]:
        """The accounts, read again when a list file changed (size or time) since last read."""
        stamps = tuple(_stamp(path) for _, path in self._sources())
        if stamps != self._loaded_from:
            self.load_accounts()
            self._loaded_from = stamps
        return self.accounts

    def load_accounts(self) -> None:
        """Read and verify the account lists: the signed one (``accounts_file``) and the unit's
        own (``vigil console-user``, MACed under a KEK-derived key). A list that is refused
        leaves the other, the installer's config account and the service login, audited and
        shown in status: the unit keeps its console for the technician who comes to fix it.
        The highest version of each list accepted is kept in the store (MACed under the KEK),
        so an older list put back on the card is refused. A listed name wins over the same
        name in the unit's own list."""
        from firmware.console import accounts as console_accounts

        found: dict[str, console_accounts.Account] = {}
        errors: list[str] = []
        for source, path in self._sources():
            if source == "local" and not path.exists():
                continue
            try:
                listed = self._read_list(source, path)
            except (OSError, console_accounts.AccountError, StoreError) as e:
                why = (f"cannot read {path}: {e.strerror or e}" if isinstance(e, OSError)
                       else str(e))
                errors.append(f"{source}: {why}")
                log.error("console account list refused", extra={"list": source, "error": why})
                self._audit_accounts("refused", {"list": source, "error": why})
                continue
            found = {**listed.accounts, **found} if source == "local" else dict(listed.accounts)
            self._audit_accounts("ok", {"list": source, "version": listed.version,
                                        "accounts": len(listed.accounts),
                                        "issued": listed.issued_at.isoformat()})
        self.accounts = found
        self.accounts_error = "; ".join(errors) or None

    def _read_list(self, source: str, path: Path) -> console_accounts.AccountList:
        from firmware.console import accounts as console_accounts

        with open(path, "rb") as f:
            blob = f.read(console_accounts.MAX_FILE_BYTES + 1)
        if source == "signed":
            key = console_accounts.load_public_key(self.settings.accounts_key)
            listed = console_accounts.parse_accounts(blob, key)
        else:
            listed = console_accounts.parse_local_accounts(
                blob, self.store.derive_key(console_accounts.LOCAL_KEY_PURPOSE))
        floors = self.store.version_floors()
        name = console_accounts.FLOOR_PREFIX + source
        floor = floors.get(name)
        if listed.version < floor:
            raise console_accounts.AccountError(
                f"account list version {listed.version} is older than version {floor}, "
                "already accepted (an old list put back?)")
        floors.raise_to(name, listed.version)
        return listed

    def _audit_accounts(self, result: str, detail: dict[str, Any]) -> None:
        try:
            self.store.audit("console", "system", "console.accounts", "start", result, detail)
        except Exception:  # a sick store must not take the console down
            log.exception("console: audit write failed")

    def run(self, stop: threading.Event) -> None:
        port = self.serial_factory()
        self._loaded_from = None  # read the lists afresh at every start of the worker
        self.current_accounts()
        session = ConsoleSession(self.settings, self.store, self.status_fn, self.clock,
                                 self.throttle, self.logs_fn, self.current_accounts,
                                 self.service_key)
        self.session = session
        editor = LineEditor(self.settings.max_line_bytes)
        log.info("console listening", extra={"port": self.settings.port})
        try:
            self._send(port, session.greet())
            while not stop.is_set():
                data = self._read(port)
                out = bytearray()
                for byte in data:
                    echo, event = editor.push(byte, session.echo)
                    out += echo
                    if event is not None:
                        out += self._guarded(session, functools.partial(session.handle, event))
                out += self._guarded(session, session.tick)
                if out:
                    self._send(port, out)
            if session.logged_in:
                self._send(port, "\r\ndaemon stopping: " + session.logout("daemon stopping"))
        except BaseException:
            if session.logged_in:
                session.logout("port error")
            raise
        finally:
            try:
                port.close()
            except Exception:  # closing a dead port must not hide the cause
                log.debug("console port close failed", exc_info=True)

    @staticmethod
    def _guarded(session: ConsoleSession, fn: Callable[[], str]) -> bytes:
        try:
            return fn().encode("utf-8", "replace")
        except Exception:  # last line of defence: the session state is reset
            log.exception("console session error")
            if session.logged_in:
                session.logout("internal error")
            session.state = State.LOGIN
            return b"\r\nerror: internal console error; session reset\r\n" + (
                session.greet().encode())

    def _read(self, port: SerialPort) -> bytes:
        try:
            data = port.read(1)
            if data:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(min(waiting, 4096))
            return data
        except Exception as e:
            raise ConsoleError(f"console port {self.settings.port} read failed: {e}") from e

    def _send(self, port: SerialPort, data: str | bytes | bytearray) -> None:
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
        try:
            port.write(raw)
        except SerialWriteTimeout:
            # Nobody is draining the line (flow control held off): drop output, keep going.
            log.warning("console write timed out; output dropped", extra={"bytes": len(raw)})
        except Exception as e:
            raise ConsoleError(f"console port {self.settings.port} write failed: {e}") from e

