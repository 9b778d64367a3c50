"""Config section ``[uplink]``: every key declared once, on :class:`UplinkSettings`."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.config_keys import setting


@dataclass(frozen=True)
class UplinkSettings:
    """Config section ``[uplink]``."""

    endpoint: str = setting("", doc="Agency ingest base URL (https). Empty = no uplink: reads "
                            "queue in the store's outbox.")
    ca_file: str = setting("", doc="The agency CA certificate, pinned: the only trust anchor.")
    cert_file: str = setting("", doc="This device's certificate (from provisioning).")
    key_file: str = setting("", doc="This device's private key (0600).")
    device_id: str = setting("", doc="Must equal the certificate's CN; empty = [unit] "
                             "camera_id.")
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
