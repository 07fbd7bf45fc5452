"""Entry point: `python -m identity serve` or `python -m identity migrate`."""

from identity.main import main

raise SystemExit(main())
