"""`python -m firmware.cli ...` is `vigil ...` (systemd units, the HIL rig, benchmarks use it)."""

from firmware.cli.main import main

raise SystemExit(main())
