"""The one place configuration is validated.

A TOML file becomes a frozen :class:`Settings` of typed, frozen per-section settings, or a
:class:`ConfigError` naming the file and the key. Unknown sections and keys are rejected (typos
must not silently fall back to defaults), types are checked strictly (``true`` is not an int),
ranges are enforced, and cross-field rules are checked last. Nothing here touches hardware.

Each section is declared once in ``SECTIONS`` with its keys; ``docs/configuration.md`` documents
the same table and a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.camera import CameraSettings
from drivers.config_keys import Key, Section
from drivers.gps import GpsSettings
from drivers.illuminator import IlluminatorSettings
from drivers.modem import ModemSettings
from firmware.app.supervisor import SupervisorSettings
from firmware.config import policy as _policy
from firmware.config import sections as _schema
from firmware.config.sections import (
    InferenceSettings,
    KeySettings,
    LoggingSettings,
    StatusSettings,
    UnitSettings,
    WatchdogSettings,
)
from firmware.console.serial_console import ConsoleSettings
from firmware.errors import ConfigError
from firmware.link.hotlists import HotlistSettings
from firmware.uplink.settings import UplinkSettings
from inference.tracker import TrackerSettings
from ota.settings import OtaSettings
from storage.settings import StoreSettings

__all__ = ["EX_CONFIG", "ConfigError", "Key", "Section", "Settings", "check_files", "load",
           "redacted", "replace", "resolve", "simulation_defaults", "validate"]

EX_CONFIG = 78  # sysexits.h: configuration error

DEFAULT_CONFIG_PATHS = (Path("/etc/vigil/vigil.toml"),)

#: A config file is a few kilobytes; anything this large is not one (and is not parsed).
MAX_CONFIG_BYTES = 1 << 20
#: Deepest nesting of arrays and inline tables accepted. No key needs more than 2; tomllib
#: recurses once per level and a few hundred levels raise RecursionError.
MAX_NESTING = 32

# Strings and comments (whose brackets do not nest), or one bracket.
_TOKEN = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"{3,5}|\'\'\'(?:[^\']|\'(?!\'\'))*\'{3,5}'
    r'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]', re.DOTALL)


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
        t.__name__, t.__name__
    )


def _coerce(section: str, name: str, key: Key, value: Any, where: str) -> Any:
    label = f"{where}: [{section}] {name}"
    if value is None:
        if key.nullable:
            return None
        raise ConfigError(f"{label}: must not be empty", path=where, key=f"{section}.{name}")
    want = key.type
    ok: bool
    if want is float or (isinstance(want, tuple) and float in want):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif want is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif want is tuple:
        ok = isinstance(value, list)
        if ok:
            value = tuple(value)
    else:
        ok = isinstance(value, want)
    if not ok:
        raise ConfigError(
            f"{label}: expected {_type_name(want)}, got {type(value).__name__} {value!r}",
            path=where, key=f"{section}.{name}",
        )
    problem = key.problem(value)
    if problem is not None:
        raise ConfigError(f"{label}: {problem}", path=where, key=f"{section}.{name}")
    return value


def _sections() -> dict[str, Section]:
    return _schema.SECTIONS


@dataclass(frozen=True)
class Settings:
    """Validated settings: one frozen, typed object per section, plus where they came from."""

    source: str
    unit: UnitSettings
    inference: InferenceSettings
    supervisor: SupervisorSettings
    watchdog: WatchdogSettings
    status: StatusSettings
    logging: LoggingSettings
    camera: CameraSettings
    tracker: TrackerSettings
    store: StoreSettings
    keys: KeySettings
    illuminator: IlluminatorSettings
    gps: GpsSettings
    uplink: UplinkSettings
    hotlists: HotlistSettings
    modem: ModemSettings
    console: ConsoleSettings
    ota: OtaSettings

    @property
    def sections(self) -> dict[str, Any]:
        """Every section by name, in schema order (for generic code: show, diff, replace)."""
        return {name: getattr(self, name) for name in _sections()}


def _settings(source: str, built: Mapping[str, Any]) -> Settings:
    # Every schema section is a typed field (a section without one fails here, loudly).
    return Settings(source=source, **built)


def validate(data: Mapping[str, Any], where: str = "<config>",
             agency_policy: _policy.AgencyPolicy | None = None) -> Settings:
    """Turn parsed TOML into :class:`Settings` or raise :class:`ConfigError`.

    Policy bounds (:mod:`firmware.config.policy`) are checked last; ``agency_policy`` is the
    verified signed agency policy that may widen them (:func:`load` reads it)."""
    sections = _sections()
    for name in data:
        if name not in sections:
            raise ConfigError(
                f"{where}: unknown section [{name}] (known: {', '.join(sorted(sections))})",
                path=where, key=name,
            )
    built: dict[str, Any] = {}
    for sname, spec in sections.items():
        raw = data.get(sname, {})
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: [{sname}] must be a table", path=where, key=sname)
        for kname in raw:
            if kname not in spec.keys:
                raise ConfigError(
                    f"{where}: [{sname}] {kname}: unknown key (known: "
                    f"{', '.join(sorted(spec.keys))})",
                    path=where, key=f"{sname}.{kname}",
                )
        values: dict[str, Any] = {}
        for kname, key in spec.keys.items():
            if kname in raw:
                values[kname] = key.to_value(_coerce(sname, kname, key, raw[kname], where))
            elif key.required:
                raise ConfigError(
                    f"{where}: [{sname}] {kname}: required key is missing",
                    path=where, key=f"{sname}.{kname}",
                )
            else:
                values[kname] = key.to_value(key.default)
        try:
            obj = spec.target(**values)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: [{sname}]: {e}", path=where, key=sname) from e
        if spec.check is not None:
            problem = spec.check(obj)
            if problem:
                raise ConfigError(f"{where}: [{sname}] {problem}", path=where, key=sname)
        built[sname] = obj
    problem = _schema.cross_check(built) or _policy.problems(built, agency_policy)
    if problem:
        raise ConfigError(f"{where}: {problem}", path=where)
    return _settings(where, _schema.finalize(built))


def _agency_policy(path: Path, data: Mapping[str, Any]) -> _policy.AgencyPolicy | None:
    """The signed agency policy beside the config file, verified with the agency key the
    config names, for the unit the config describes; None when there is no such file."""
    where = path.parent / _policy.POLICY_FILE_NAME
    try:
        raw = where.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"{where}: cannot read: {e}", path=str(where)) from e
    from firmware.link.hotlists import HotlistSignatureError, load_public_key

    def table(name: str) -> Mapping[str, Any]:
        t = data.get(name)
        return t if isinstance(t, Mapping) else {}

    hot, unit, up = table("hotlists"), table("unit"), table("uplink")
    try:
        key = load_public_key(str(hot.get("agency_public_key", "")))
    except (HotlistSignatureError, OSError) as e:
        raise ConfigError(f"{where}: needs [hotlists] agency_public_key to verify it: {e}",
                          path=str(where), key="hotlists.agency_public_key") from e
    device = str(up.get("device_id") or unit.get("camera_id") or "")
    try:
        return _policy.verify_policy(raw, key, device)
    except _policy.PolicyError as e:
        raise ConfigError(f"{where}: {e}", path=str(where)) from e


def _nesting_problem(text: str) -> str | None:
    """Arrays or inline tables nested deeper than :data:`MAX_NESTING`, found before parsing."""
    depth = 0
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, m.start()) + 1
                return f"arrays or inline tables nested deeper than {MAX_NESTING} levels " \
                       f"(line {line})"
        elif tok in "]}":
            depth = max(0, depth - 1)
    return None


def parse(raw: bytes, where: str) -> dict[str, Any]:
    """TOML bytes to data, bounded: size and nesting are checked before ``tomllib`` runs, and
    nothing but :class:`ConfigError` comes out (no RecursionError, no integer-digits
    ValueError), so a pathological file can never take down a reloading daemon."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: config file is {len(raw)} bytes, larger than the "
                          f"{MAX_CONFIG_BYTES} allowed", path=where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not UTF-8 text: {e}", path=where) from e
    problem = _nesting_problem(text)
    if problem:
        raise ConfigError(f"{where}: {problem}", path=where)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: TOML syntax error: {e}", path=where) from e
    except RecursionError as e:
        raise ConfigError(f"{where}: TOML nested too deeply to parse", path=where) from e
    except ValueError as e:  # e.g. an integer longer than Python converts (4300 digits)
        raise ConfigError(f"{where}: TOML value cannot be read: {e}", path=where) from e


def load(path: Path) -> Settings:
    """Read and validate a TOML file."""
    where = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"{where}: cannot read config: {reason}", path=where) from e
    data = parse(raw, where)
    return validate(data, where, _agency_policy(path, data))


def _under_file(path: Path) -> Path | None:
    """The existing non-directory that ``path`` (a directory, or a file's parent) would sit
    under, or ``None`` when every existing ancestor is a directory."""
    for p in (path, *path.parents):
        try:
            if p.exists():
                return None if p.is_dir() else p
        except OSError:
            return p
    return None


def _files_problems(s: Settings) -> list[tuple[str, str]]:
    """(key, problem) for every file or directory the settings name that cannot work here."""
    out: list[tuple[str, str]] = []
    dirs = [("unit.state_dir", s.unit.resolved_state_dir()),
            ("store.path", Path(s.store.path).parent),
            ("keys.kek_file", Path(s.keys.kek_file).parent),
            ("hotlists.path", Path(s.hotlists.path)),
            ("status.socket", Path(s.status.socket).parent)]
    for key, d in dirs:
        blocker = _under_file(d)
        if blocker is not None:
            out.append((key, f"{d} cannot be a directory: {blocker} is a file"))
            break  # the others are usually under the same state directory
    kek = Path(s.keys.kek_file)
    if kek.exists() and not kek.is_file():
        out.append(("keys.kek_file", f"{kek} is not a regular file"))
    cam = s.camera
    if cam.backend == "replay" and not Path(cam.source).exists():
        out.append(("camera.source", f"replay source {cam.source} does not exist"))
    if s.inference.model_dir and not Path(s.inference.model_dir).is_dir():
        out.append(("inference.model_dir", f"{s.inference.model_dir} is not a directory"))
    if s.uplink.endpoint or s.uplink.sends:
        from firmware.uplink.transport import UplinkConfigError, build_ssl_context

        try:
            build_ssl_context(s.uplink)
        except UplinkConfigError as e:
            out.append(("uplink", str(e).removeprefix("uplink.")))
    if s.hotlists.agency_public_key:
        from firmware.link.hotlists import HotlistSignatureError, load_public_key

        try:
            load_public_key(s.hotlists.agency_public_key)
        except (HotlistSignatureError, OSError) as e:
            out.append(("hotlists.agency_public_key", str(e)))
    if s.ota.enabled and not Path(s.ota.trusted_root).is_file():
        out.append(("ota.trusted_root", f"{s.ota.trusted_root!r} is not a file"))
    return out


def check_files(settings: Settings) -> None:
    """Raise :class:`ConfigError` if a file or directory the settings name cannot work here.

    The second half of validation, run by ``vigil config check`` and at start-up alike (and on
    SIGHUP): certificates that load, a replay source that exists, a key file that is a file, an
    agency key that parses, directories that are not under a file. :func:`validate` stays pure
    (no I/O), so tests and tools can build settings for paths that do not exist.
    """
    problems = _files_problems(settings)
    if problems:
        where = settings.source
        text = "; ".join(f"[{sec}] {name + ': ' if name else ''}{msg}"
                         for sec, _, name, msg in ((*k.partition("."), m) for k, m in problems))
        raise ConfigError(f"{where}: {text}", path=where, key=problems[0][0])


SIMULATION_CONFIG = Path(__file__).resolve().parent / "defaults" / "simulation.toml"


def simulation_defaults() -> Settings:
    """The embedded simulation rig: replay camera over bundled footage, mock GPIO, no modem."""
    return load(SIMULATION_CONFIG)


def resolve(path: Path | None) -> Settings:
    """``--config`` if given, else ``$VIGIL_CONFIG``, else /etc/vigil/vigil.toml, else sim."""
    if path is not None:
        return load(path)
    env = os.environ.get("VIGIL_CONFIG")
    if env:
        return load(Path(env))
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.exists():
            return load(candidate)
    return simulation_defaults()


def redacted(settings: Settings) -> dict[str, dict[str, Any]]:
    """The effective configuration as plain data with secret values replaced."""
    out: dict[str, dict[str, Any]] = {}
    for sname, spec in _sections().items():
        obj = settings.sections[sname]
        sec: dict[str, Any] = {}
        for kname, key in spec.keys.items():
            value = getattr(obj, kname)
            if key.secret and value:
                value = "<redacted>"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            sec[kname] = value
        out[sname] = sec
    return out


def replace(settings: Settings, section: str, **changes: Any) -> Settings:
    """A copy with some keys of one section changed (tests and CLI overrides)."""
    sections = settings.sections
    sections[section] = dataclasses.replace(sections[section], **changes)
    return _settings(settings.source, sections)
