"""Voucherify API client: publishing codes, listing segment members."""
