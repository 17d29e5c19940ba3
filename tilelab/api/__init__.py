"""The user-facing layer calls: check arguments, compile, drive the RTL, compare with the golden."""
