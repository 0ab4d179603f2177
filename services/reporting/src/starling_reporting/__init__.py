"""Starling's reporting service."""
