"""ORPO + LoRA alignment on dpo_mix_en, optionally mixed with SAA, on TRL and accelerate."""

import os

# ORPO lives in trl.experimental in TRL 1.x; we use it on purpose (pinned trl<2), so its import
# warning is noise for our users.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
