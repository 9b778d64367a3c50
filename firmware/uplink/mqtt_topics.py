"""The MQTT topic layout (docs/uplink.md) and the checks on its parts. Pure: no I/O.

Every unit publishes under ``vigil/<agency>/<site>/<device_id>/``:

* ``reads``, ``alerts``: the same gzip JSON envelopes as ``POST /v1/reads`` and
  ``/v1/alerts`` over HTTPS, QoS 1, never retained; ``audit``: the signed audit-head heartbeat
  (``POST /v1/audit-checkpoints``'s body); ``status``: the unit's status report (``POST
  /v1/status``'s body: OTA steps), QoS 1, not retained (each carries only the steps not yet
  acknowledged);
* ``health``: retained; the birth message on connect, the broker's last will when the unit
  vanishes, a refresh every ``mqtt_health_interval_s`` and a clean ``offline`` on shutdown.

and subscribes (QoS 1) to nudges, fleet-wide and for itself:

* ``vigil/<agency>/notify/hotlists`` and ``vigil/<agency>/<site>/<device_id>/notify/hotlists``;
* ``vigil/<agency>/notify/ota`` and ``vigil/<agency>/<site>/<device_id>/notify/ota``.

A nudge only says "look now": its payload is ignored, and what is fetched is verified exactly
as the periodic poll does (signed hotlists, TUF-signed updates).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

ROOT = "vigil"
#: The upload paths of the HTTPS wire format and their MQTT topic (the last level).
UPLOAD_TOPICS = {"/v1/reads": "reads", "/v1/alerts": "alerts",
                 "/v1/audit-checkpoints": "audit", "/v1/status": "status"}
#: Topics whose messages are batches of items with ids (acknowledged id by id).
BATCH_TOPICS = ("reads", "alerts")
#: What a nudge can ask for.
NUDGES = ("hotlists", "ota")
MAX_SEGMENT = 64
DEFAULT_PORT = 8883


def segment_problem(value: str) -> str | None:
    """Why ``value`` cannot be one level of a topic name, or ``None``. Wildcards and the level
    separator would change which subscriptions match; a leading ``$`` is reserved for the
    broker (``$SYS``, ``$share``)."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_SEGMENT:
        return f"must be at most {MAX_SEGMENT} characters"
    bad = sorted({c for c in value if c in "/+#" or ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        return f"must not contain {', '.join(repr(c) for c in bad)}"
    if value.startswith("$"):
        return "must not start with '$' (reserved for the broker)"
    return None


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int


def parse_broker(url: str) -> BrokerAddress:
    """``mqtts://host[:port]`` -> address. Raises ``ValueError``: TLS is never optional, so
    ``mqtt://`` (plain TCP) is refused, as are paths, user info and queries."""
    parts = urlsplit(url)
    if parts.scheme != "mqtts":
        raise ValueError("mqtt_broker must be an mqtts:// URL (TLS is never optional)")
    if parts.username or parts.password or parts.query or parts.fragment \
            or parts.path not in ("", "/"):
        raise ValueError("mqtt_broker must be mqtts://host[:port] and nothing else")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as e:
        raise ValueError(f"mqtt_broker: {e}") from e
    if not parts.hostname:
        raise ValueError("mqtt_broker has no host")
    return BrokerAddress(parts.hostname, port)


@dataclass(frozen=True)
class Topics:
    """One unit's topics."""

    agency: str
    site: str
    device: str

    @property
    def unit(self) -> str:
        return f"{ROOT}/{self.agency}/{self.site}/{self.device}"

    @property
    def health(self) -> str:
        return f"{self.unit}/health"

    def upload(self, path: str) -> str:
        """The topic for an HTTPS upload path (``/v1/reads`` -> ``.../reads``)."""
        if path not in UPLOAD_TOPICS:
            raise ValueError(f"no MQTT topic for {path!r}")
        return f"{self.unit}/{UPLOAD_TOPICS[path]}"

    def subscriptions(self) -> tuple[str, ...]:
        fleet = f"{ROOT}/{self.agency}/notify"
        return tuple(f"{base}/{n}" for base in (fleet, f"{self.unit}/notify") for n in NUDGES)

    def nudge_of(self, topic: str) -> str | None:
        """Which nudge a received topic carries, or ``None`` when it is not one of ours."""
        if topic not in self.subscriptions():
            return None
        return topic.rsplit("/", 1)[1]

    def problem(self) -> str | None:
        for what, value in (("mqtt_agency", self.agency), ("mqtt_site", self.site),
                            ("device_id", self.device)):
            p = segment_problem(value)
            if p:
                return f"{what} {value!r} cannot be a topic level: {p}"
        return None
