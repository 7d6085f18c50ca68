"""An in-memory Braze /users/track emulator for the sandbox, tests and benchmarks."""
