"""Reservations: booking a host, or a share of it, for a time window."""
