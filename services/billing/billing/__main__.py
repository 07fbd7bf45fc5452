"""Entry point: `python -m billing serve` or `python -m billing migrate`."""

from billing.main import main

raise SystemExit(main())
