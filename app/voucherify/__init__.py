"""Voucherify API client: publishing codes, reading customers, walking segments."""
