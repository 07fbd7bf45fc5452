"""Entry point: `python -m jobs serve` or `python -m jobs migrate`."""

from jobs.main import main

raise SystemExit(main())
