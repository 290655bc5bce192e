"""training/chat_templates.py on tokenizers with each behaviour the paper's models show."""

from __future__ import annotations

import pytest
from conftest import REPO
from trl.data_utils import maybe_apply_chat_template

from sycophancy_eval_kit.core.prompts import render_conversation
from sycophancy_eval_kit.testing.tiny_models import CHAT_TEMPLATE, build_tokenizer
from sycophancy_eval_kit.training.chat_templates import (
    FALLBACK_CHAT_TEMPLATE,
    apply_policy,
    merge_system_turn,
    probe_policy,
)
from sycophancy_eval_kit.training.config import DataArguments
from sycophancy_eval_kit.training.data import prepare_preference_data

#: like Gemma-7B-it's template: raises on a system role.
REJECTS_SYSTEM = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
    "{{ message['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
#: a template that renders only user/assistant turns and silently ignores a system turn.
DROPS_SYSTEM = (
    "{% for message in messages %}{% if message['role'] != 'system' %}[{{ message['role'] }}] "
    "{{ message['content'] }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
)

SYSTEM = {"role": "system", "content": "Answer briefly."}
CONVERSATION = [
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3 + 3?"},
]


@pytest.fixture(scope="module")
def base_tokenizer():
    return build_tokenizer()


def _with_template(tokenizer, template: str | None):
    """A copy of the tiny tokenizer whose chat template is ``template`` (None: it has none)."""
    special = {k: getattr(tokenizer, k) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    copy = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, **special)
    copy.chat_template = template
    return copy


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, "fallback"),
        (REJECTS_SYSTEM, "merge_system"),
        (DROPS_SYSTEM, "merge_system"),
        (CHAT_TEMPLATE, "native"),
    ],
)
def test_auto_policy_per_behaviour(base_tokenizer, template, expected) -> None:
    tok = _with_template(base_tokenizer, template)
    assert probe_policy(tok)[0] == expected
    choice = apply_policy(tok, "auto")
    assert choice.policy == expected and choice.requested == "auto"
    if expected == "fallback":
        assert tok.chat_template == FALLBACK_CHAT_TEMPLATE and choice.template_source == "fallback"
    else:
        assert tok.chat_template == template


def test_fallback_template_renders_what_the_eval_tasks_send(base_tokenizer) -> None:
    tok = _with_template(base_tokenizer, None)
    apply_policy(tok)
    for system in (None, SYSTEM["content"]):
        messages = ([{"role": "system", "content": system}] if system else []) + CONVERSATION
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert rendered == render_conversation(CONVERSATION, system_instruction=system)
    # TRL's prompt/completion split gives the completion the eval's model would generate after "Assistant:"
    row = {
        "prompt": CONVERSATION,
        "chosen": [{"role": "assistant", "content": "6"}],
        "rejected": [{"role": "assistant", "content": "7"}],
    }
    out = maybe_apply_chat_template(row, tok)
    assert out["prompt"].endswith("Human: And 3 + 3?\n\nAssistant:") and out["chosen"] == " 6"


def test_merge_system_keeps_the_instruction(base_tokenizer) -> None:
    tok = _with_template(base_tokenizer, REJECTS_SYSTEM)
    with pytest.raises(Exception, match="System role not supported"):
        tok.apply_chat_template([SYSTEM, *CONVERSATION], tokenize=False)
    merged = merge_system_turn([SYSTEM, *CONVERSATION])
    assert merged[0] == {"role": "user", "content": "Answer briefly.\n\nWhat is 2 + 2?"}
    assert merged[1:] == CONVERSATION[1:]
    assert "Answer briefly." in tok.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
    assert merge_system_turn(CONVERSATION) == CONVERSATION


def test_overrides(base_tokenizer, tmp_path) -> None:
    with pytest.raises(ValueError, match="needs a chat template"):
        apply_policy(_with_template(base_tokenizer, None), "native")
    forced = apply_policy(_with_template(base_tokenizer, CHAT_TEMPLATE), "merge_system")
    assert forced.policy == "merge_system" and "probe says native" in forced.reason
    jinja = tmp_path / "t.jinja"
    jinja.write_text(REJECTS_SYSTEM)
    from_file = apply_policy(_with_template(base_tokenizer, CHAT_TEMPLATE), "auto", jinja)
    assert from_file.policy == "merge_system" and from_file.template_source == str(jinja)
    with pytest.raises(ValueError, match="expected one of"):
        apply_policy(_with_template(base_tokenizer, None), "chatml")


def test_every_fixture_row_renders_under_each_policy(base_tokenizer) -> None:
    """End to end through the data pipeline: no row reaches TRL in a form its template refuses."""
    fixtures = REPO / "training" / "fixtures"
    args = DataArguments(
        datasets=["dpo_mix_en", "saa"],
        dpo_mix_en_path=str(fixtures / "dpo_mix_en_smoke.json"),
        saa_path=str(fixtures / "saa"),
    )
    for template in (None, REJECTS_SYSTEM, DROPS_SYSTEM, CHAT_TEMPLATE):
        tok = _with_template(base_tokenizer, template)
        choice = apply_policy(tok)
        data = prepare_preference_data(args, tok, max_length=2048, template=choice)
        with_system = [r for r in data.dataset if r["row_id"].endswith("[2]")][0]
        for row in data.dataset:
            out = maybe_apply_chat_template({k: row[k] for k in ("prompt", "chosen", "rejected")}, tok)
            assert out["chosen"] and out["rejected"]
        rendered = maybe_apply_chat_template(
            {k: with_system[k] for k in ("prompt", "chosen", "rejected")}, tok
        )
        assert "one or two sentences" in rendered["prompt"]  # the system text survives every policy
