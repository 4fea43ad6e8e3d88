"""Labelled example set for the ticket classifier (a package so the CSV ships in the wheel)."""
