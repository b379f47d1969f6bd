"""Process titles placeholder."""
