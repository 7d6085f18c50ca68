"""An in-memory Voucherify emulator (publications, customers, segments, faults) for the
sandbox, tests and benchmarks."""
