"""Entry point: `python -m drive_sync serve` or `python -m drive_sync migrate`."""

from drive_sync.main import main

raise SystemExit(main())
