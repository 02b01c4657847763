"""Pure rules of Relais: no AWS, no Chalice, no I/O. Everything here is tested with plain values."""
