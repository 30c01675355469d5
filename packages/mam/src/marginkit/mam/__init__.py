"""Marginalization models for discrete data."""
