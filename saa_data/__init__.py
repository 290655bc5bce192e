"""Builds the Sycophancy Answer Assessment (SAA) preference set from BCT training data."""
