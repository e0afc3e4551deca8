"""Pure matching rules: facts in, report out. Nothing here does I/O."""
