"""Generators: each turns inputs (seed tasks, instructions, documents, examples, categories) into candidates."""
