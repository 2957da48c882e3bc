"""Tests that run: the command per language, running it, reading its outcome, repairing."""
