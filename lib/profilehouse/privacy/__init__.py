"""Privacy: the token key, keyed PII tokens (HMAC-SHA256) and masking helpers for analysts."""
