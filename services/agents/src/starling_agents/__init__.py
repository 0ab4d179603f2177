"""Starling's agents service."""
