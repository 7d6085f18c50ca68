"""voucher-relay: Voucherify webhooks to Braze custom attributes, with an audit log and replay."""

__version__ = "0.1.0"
