"""Tests of identity resolution."""
