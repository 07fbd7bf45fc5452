"""Helpers shared by the test suites: real databases, real Redis, services on real ports."""
