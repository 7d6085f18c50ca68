"""Voucherify API client (publishing codes, reading customers, walking segments) and an
in-memory Voucherify emulator for tests and benchmarks."""
