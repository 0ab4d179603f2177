"""Starling shared runtime."""
