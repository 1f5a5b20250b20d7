"""Command line for exchanges (setup, prove, deploy, publish) and users (export, verify)."""
