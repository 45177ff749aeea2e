"""The runner process: configuration, build, the cycle and its steps, lock, control, health."""
