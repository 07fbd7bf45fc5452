"""Entry point: `python -m inference serve`."""

from inference.main import main

raise SystemExit(main())
