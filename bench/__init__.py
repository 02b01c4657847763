"""`make bench`: figures about Relais (AWS calls per operation, cold import cost), not assertions."""
