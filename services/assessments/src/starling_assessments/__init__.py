"""Starling's assessments service: self-assessments of skill areas, rated from a question bank"""
