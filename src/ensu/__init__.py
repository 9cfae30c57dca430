"""ENSU Documents."""
