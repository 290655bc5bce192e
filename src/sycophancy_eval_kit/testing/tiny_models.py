"""Tiny causal LMs built offline in seconds: a byte-level BPE tokenizer and a random LlamaForCausalLM.

Used by the tests (session fixtures in ``conftest.py``) and by ``scripts/demo.py``. Byte-level BPE
means every string encodes, and every single character (option letters included) is one token.
Run ``python -m sycophancy_eval_kit.testing.tiny_models OUT_DIR [--chat]`` to build one by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>"]

#: a minimal chat template in the Zephyr style; continue_final_message works on it because the
#: final message's content is rendered verbatim.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _corpus() -> list[str]:
    """The embedded sample's prompts (the text tests feed these models), so common words are one token."""
    from sycophancy_eval_kit.core.data import ANSWER_FILE, ARE_YOU_SURE_FILE, EMBEDDED_DIR

    texts = ["Human: Assistant: The answer is ( I think I don't think that's right. Are you sure?"]
    for name in (ANSWER_FILE, ARE_YOU_SURE_FILE):
        for line in (EMBEDDED_DIR / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [m["content"] for m in row["prompt"]]
    return texts * 3


def build_tokenizer(vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def build_tiny_model(
    out_dir: str | Path, chat_template: bool = False, seed: int = 0, layers: int = 2
) -> Path:
    """Write a tokenizer and a random tiny Llama to ``out_dir`` (loadable by ``from_pretrained``)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--chat", action="store_true", help="give the tokenizer a chat template")
    args = parser.parse_args()
    print(build_tiny_model(args.out_dir, chat_template=args.chat))


if __name__ == "__main__":
    main()
