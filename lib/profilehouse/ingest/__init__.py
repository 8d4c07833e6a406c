"""Ingestion: landing files → bronze → silver (typed, standardised, validated, tokenised)."""
