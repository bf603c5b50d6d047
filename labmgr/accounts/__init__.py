"""Accounts: users, roles and the bootstrap admin."""
