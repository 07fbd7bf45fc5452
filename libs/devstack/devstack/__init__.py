"""The local stack: `python -m devstack up` runs every service on loopback, PostgreSQL and Redis included."""
