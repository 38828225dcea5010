"""Readers and normalisation: input files and streams to canonical records; rejects with reasons."""
