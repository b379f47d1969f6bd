"""Health placeholder."""
