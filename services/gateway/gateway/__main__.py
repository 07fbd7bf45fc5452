"""Entry point: `python -m gateway serve`."""

from gateway.main import main

raise SystemExit(main())
