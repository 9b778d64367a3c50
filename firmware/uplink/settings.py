"""Config section ``[uplink]``: every key declared once, on :class:`UplinkSettings`."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.config_keys import setting


@dataclass(frozen=True)
class UplinkSettings:
    """Config section ``[uplink]``."""

    endpoint: str = setting("", doc="Agency ingest base URL (https). Empty = no uplink: reads "
                            "queue in the store's outbox. With protocol = mqtt it is still where "
                            "hotlists are fetched from.")
    ca_file: str = setting("", doc="The agency CA certificate, pinned: the only trust anchor.")
    cert_file: str = setting("", doc="This device's certificate (from provisioning).")
    key_file: str = setting("", doc="This device's private key (0600).")
    device_id: str = setting("", doc="Must equal the certificate's CN; empty = [unit] "
                             "camera_id.")
    protocol: str = setting("https", choices=("https", "mqtt"),
                            doc="How reads and alerts leave: https (POST to endpoint) or mqtt "
                            "(MQTT 5 to mqtt_broker, docs/uplink.md).")
    batch_max_reads: int = setting(200, min=1, max=5000)
    batch_max_bytes: int = setting(262144, min=4096, max=16777216,
                                   doc="Uncompressed payload bytes per batch.")
    daily_bytes_cap: int = setting(52428800, min=0, max=10**12,
                                   doc="Bytes per UTC day (0 = no cap); alerts are exempt.")
    send_images: bool = setting(False, doc="Send plate crops and overview images too.")
    image_budget_fraction: float = setting(0.5, min=0.0, max=1.0,
                                           doc="Images only while less of the daily cap is "
                                           "spent.")
    backoff_initial_s: float = setting(2.0, min=0.1, max=600.0)
    backoff_max_s: float = setting(300.0, min=0.1, max=86400.0)
    timeout_s: float = setting(20.0, min=1.0, max=300.0)
    connect_timeout_s: float = setting(10.0, min=1.0, max=120.0)
    drain_rate_per_s: float = setting(25.0, min=0.1, max=1e6,
                                      doc="Steady backlog drain rate (reads/s); live reads and "
                                      "alerts keep their room.")
    alert_retry_min_s: float = setting(2.0, min=0.0, max=60.0)
    alert_lane: bool = setting(True, doc="A second connection so alerts never wait for a "
                               "batch.")
    idle_poll_s: float = setting(5.0, min=0.1, max=300.0)
    gzip_level: int = setting(6, min=1, max=9)
    # MQTT (protocol = "mqtt"); the same ca_file/cert_file/key_file give mutual TLS.
    mqtt_broker: str = setting("", doc="Broker URL, mqtts://host[:port] (port 8883 by default); "
                               "required with protocol = mqtt.")
    mqtt_agency: str = setting("", doc="Topic segment naming the agency: "
                               "vigil/<agency>/<site>/<device_id>/...")
    mqtt_site: str = setting("", doc="Topic segment naming the site.")
    mqtt_username: str = setting("", doc="Broker user name, for brokers that want one besides "
                                 "the client certificate (empty = none).")
    mqtt_password: str = setting("", secret=True, doc="Broker password (needs mqtt_username).")
    mqtt_session_expiry_s: int = setting(604800, min=3600, max=4294967295,
                                         doc="How long the broker keeps this unit's session "
                                         "(subscriptions, in-flight messages) while it is "
                                         "offline.")
    mqtt_keepalive_s: int = setting(60, min=10, max=1200,
                                    doc="MQTT keep-alive; the broker publishes the last will "
                                    "after 1.5 times this without traffic.")
    mqtt_health_interval_s: float = setting(60.0, min=5.0, max=86400.0,
                                            doc="How often the retained health message is "
                                            "refreshed.")
    mqtt_nudge_jitter_s: float = setting(30.0, min=0.0, max=3600.0,
                                         doc="A hotlist or update nudge is acted on after a "
                                         "random delay up to this, so a fleet-wide nudge does "
                                         "not bring every unit to the server at once.")

    @property
    def sends(self) -> bool:
        """Whether reads leave the unit at all (an endpoint for https, a broker for mqtt)."""
        return bool(self.mqtt_broker if self.protocol == "mqtt" else self.endpoint)
