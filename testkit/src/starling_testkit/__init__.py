"""Starling test kit: a pytest plugin."""
