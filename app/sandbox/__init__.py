"""`voucher-relay sandbox` (`make sandbox`): the relay, both emulators and a guided first
delivery on one machine, without a Braze or Voucherify account. Imported by the CLI only."""
