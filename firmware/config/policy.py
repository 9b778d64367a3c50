"""Policy bounds the config validator enforces, and the signed agency policy that may widen one.

* ``[store] retention_days`` is 1..30 (:data:`RETENTION_DEFAULT_MAX_DAYS`). A longer retention
  needs a signed agency policy file beside the config (``agency-policy.json``) that allows it
  for this unit; even then never above ``storage.settings.RETENTION_POLICY_MAX_DAYS``.
* ``[logging] reads_stdout = true`` only on the simulation rig (``[camera] backend =
  "replay"``): on a deployed unit stdout is the journal, and plates would sit there in
  plaintext, outside retention and outside the audit.

The policy file is one JSON object, signed with the agency's Ed25519 key (the key that signs
hotlists, ``[hotlists] agency_public_key``)::

    {"format": "vigil-agency-policy/1", "device_id": "cam-0042" | "*",
     "max_retention_days": 60, "issued_at": "2026-12-01T00:00:00+00:00",
     "signature": "<base64 Ed25519 over the canonical JSON of the other fields>"}

Pure functions over bytes and parsed data; ``firmware.config.load`` reads the file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

RETENTION_DEFAULT_MAX_DAYS = 30
POLICY_FILE_NAME = "agency-policy.json"
POLICY_FORMAT = "vigil-agency-policy/1"
SIMULATION_CAMERA = "replay"


class PolicyError(ValueError):
    """The agency policy file is malformed, not signed by the agency, or not for this unit."""


@dataclass(frozen=True)
class AgencyPolicy:
    device_id: str
    max_retention_days: int
    issued_at: datetime


def _signed_bytes(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":")).encode()


def sign_policy(key: Ed25519PrivateKey, device_id: str, max_retention_days: int,
                issued_at: datetime) -> bytes:
    """The agency's side: a signed policy file's bytes."""
    fields = {"format": POLICY_FORMAT, "device_id": device_id,
              "max_retention_days": max_retention_days, "issued_at": issued_at.isoformat()}
    sig = base64.b64encode(key.sign(_signed_bytes(fields))).decode()
    return json.dumps({**fields, "signature": sig}, indent=1).encode()


def verify_policy(raw: bytes, key: Ed25519PublicKey, device_id: str) -> AgencyPolicy:
    """The policy in ``raw`` if the agency signed it for ``device_id`` (or ``"*"``)."""
    try:
        doc = json.loads(raw)
        sig = base64.b64decode(doc.pop("signature"), validate=True)
        if doc.get("format") != POLICY_FORMAT:
            raise PolicyError(f"format is {doc.get('format')!r}, expected {POLICY_FORMAT}")
        key.verify(sig, _signed_bytes(doc))
        policy = AgencyPolicy(str(doc["device_id"]), int(doc["max_retention_days"]),
                              datetime.fromisoformat(doc["issued_at"]))
    except InvalidSignature as e:
        raise PolicyError("signature does not verify under the agency key") from e
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise PolicyError(f"not an agency policy: {e}") from e
    if policy.device_id not in ("*", device_id):
        raise PolicyError(f"policy is for unit {policy.device_id!r}, this is {device_id!r}")
    return policy


def problems(built: Mapping[str, Any], policy: AgencyPolicy | None) -> str | None:
    """The policy bounds over validated sections (pure); None when they hold."""
    keep = built["store"].retention_days
    ceiling = RETENTION_DEFAULT_MAX_DAYS if policy is None else policy.max_retention_days
    if keep > ceiling:
        where = (f"the signed agency policy allows {ceiling}" if policy is not None else
                 f"policy maximum is {RETENTION_DEFAULT_MAX_DAYS} days unless a signed agency "
                 f"policy file ({POLICY_FILE_NAME} beside the config) allows more")
        return f"[store] retention_days={keep}: {where}"
    if built["logging"].reads_stdout and built["camera"].backend != SIMULATION_CAMERA:
        return ("[logging] reads_stdout = true is only for the simulation rig (camera backend "
                f"{SIMULATION_CAMERA!r}): on a unit stdout is the journal, plates would sit "
                "there in plaintext")
    return None
