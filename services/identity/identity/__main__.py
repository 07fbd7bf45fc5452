"""Entry point: `python -m identity serve|migrate|create-user|rotate-vault-keys`."""

from identity.main import main

raise SystemExit(main())
