"""Plumbing shared by every service: settings, logging, metrics, gRPC server and clients, errors, db, redis.

Nothing here knows about jobs, users or money; business logic lives in the services.
"""
