"""Minimal Litestar apps the service is compared with."""
