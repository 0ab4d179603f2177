"""Starling's users service: registration, login with JWT access tokens, and user administration."""
