"""Emulators of Braze (`braze/`) and Voucherify (`voucherify/`) and `voucher-relay sandbox`
(`make sandbox`: the relay, both emulators and a guided first delivery on one machine, without a
Braze or Voucherify account). Only the composition roots, tests and benchmarks import it: an
import-linter contract forbids it to the product."""
