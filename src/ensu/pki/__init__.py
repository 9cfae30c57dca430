"""The development PKI: a CA, a server certificate and consumer certificates (R-GW-1)."""
