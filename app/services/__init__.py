"""Business rules: plain functions that views, CLI commands and jobs share (see README, Layout)."""
