"""Accounts: password hashing, tokens, registration and login."""
