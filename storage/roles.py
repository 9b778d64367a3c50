"""Who may touch read data: the fixed roles, the typed caller identity, the case-number rule.

Pure: no I/O. :mod:`storage.access` applies these rules to every access to read data (plate
search, reads by id with their images), so a caller that bypasses the console still meets them.

Roles (docs/console.md, docs/threat-model.md):

* ``technician`` - health and diagnostics; never plate data;
* ``installer`` - a technician who also aims and provisions the unit; never plate data;
* ``investigator`` - plate search and reads by id, each with a case number in the reason;
* ``admin`` - the agency's administrator; may be given read access through ``search_roles``.

Only :data:`DATA_ROLES` may ever appear in ``[store] search_roles``: a configuration cannot hand
plate data to a technician.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    TECHNICIAN = "technician"
    INSTALLER = "installer"
    INVESTIGATOR = "investigator"
    ADMIN = "admin"


ROLES: tuple[str, ...] = tuple(r.value for r in Role)
#: Roles that may be allowed read data (through ``search_roles``); the others never are.
DATA_ROLES: tuple[str, ...] = (Role.INVESTIGATOR.value, Role.ADMIN.value)
DEFAULT_SEARCH_ROLES: tuple[str, ...] = (Role.INVESTIGATOR.value,)

#: A case number: 4..40 characters of letters, digits and ``/ . _ : -``, at least one digit
#: (``2026-1142``, ``CR/26/0099``). "case 1", "test" or "because" are not case numbers.
_CASE_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9/._:-]{3,39}")
MAX_REASON_CHARS = 200
#: A login name: lower-case letter first, then letters, digits, ``.``, ``_``, ``-`` (2..32).
LOGIN_NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
#: Login names the console keeps for itself.
RESERVED_LOGIN_NAMES = frozenset({"service", "unknown", "system"})
#: A person's name in an actor string: printable, no spaces or control characters.
_PERSON = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._:+-]{0,79}")


def case_number(reason: str) -> str | None:
    """The first case number in ``reason``, or None when it holds none."""
    for word in reason.replace(",", " ").replace(";", " ").split():
        word = word.strip("#()[]\"'")
        if word.lower().startswith("case=") or word.lower().startswith("case:"):
            word = word[5:]
        if _CASE_TOKEN.fullmatch(word) and any(ch.isdigit() for ch in word):
            return word
    return None


def search_roles_problem(roles: tuple[str, ...]) -> str | None:
    """Why a ``search_roles`` value is not allowed, or None."""
    if not roles:
        return "must name at least one role (investigator or admin)"
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        return f"unknown role(s) {unknown!r}; roles are {', '.join(ROLES)}"
    never = [r for r in roles if r not in DATA_ROLES]
    if never:
        return (f"role(s) {never!r} may never see plate data; only "
                f"{' or '.join(DATA_ROLES)} may be given it")
    if len(set(roles)) != len(roles):
        return "lists a role twice"
    return None


@dataclass(frozen=True)
class Caller:
    """A person asking for read data: who (``person``, the audit actor such as
    ``console:alice``), in which role, and why (``reason``, which must hold a case number).

    Built by the front-end that authenticated the person (the console session, a CLI run as the
    service user); :mod:`storage.access` checks the role and the reason and audits both.
    """

    person: str
    role: Role
    reason: str

    def __post_init__(self) -> None:
        if not _PERSON.fullmatch(self.person):
            raise ValueError("person must be 1..80 printable characters without spaces")
        if not isinstance(self.role, Role):
            object.__setattr__(self, "role", Role(self.role))  # ValueError for an unknown role

    def refusal(self, allowed_roles: tuple[str, ...]) -> str | None:
        """Why this caller may not have read data, or None when it may."""
        if self.role.value not in allowed_roles:
            return f"role {self.role.value} may not access read data"
        if len(self.reason) > MAX_REASON_CHARS:
            return f"reason longer than {MAX_REASON_CHARS} characters"
        if case_number(self.reason) is None:
            return "no case number in the reason"
        return None
