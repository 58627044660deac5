"""Access control: policies (what may be done where) and the authorizer (may this caller do
this). Pure code over plain data: the API resolves callers and calls it, the state machine
stores policies and token records, nothing here does I/O."""
