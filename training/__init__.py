"""ORPO + LoRA alignment on dpo_mix_en, optionally mixed with SAA, on TRL and accelerate."""
