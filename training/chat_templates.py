"""Per-model chat-template policy: how a preference row's conversation reaches the tokenizer.

TRL renders conversational rows with the tokenizer's own chat template. The paper's models disagree
about what that template accepts, so one of three policies is applied before training:

``native``
    The template renders system, user and assistant turns as given (Mistral-7B-Instruct v0.3 and most
    current instruct models).
``merge_system``
    The template refuses a system role (Gemma-7B-it raises "System role not supported"; Mistral v0.2's
    original template raises on any role order other than user/assistant) or silently drops it. The
    system text is prepended to the first user turn, separated by a blank line, which is what
    LLaMA-Factory does for templates without a system slot, so the instruction is kept rather than lost.
``fallback``
    The tokenizer has no chat template at all (Falcon-7B-instruct). We install
    :data:`FALLBACK_CHAT_TEMPLATE`, which renders Sharma et al.'s ``Human: ...\\n\\nAssistant:`` text,
    byte for byte what the lm-eval tasks send when run without ``--apply_chat_template``
    (``sycophancy_eval_kit.core.prompts.render_conversation``), so such a model is trained in the format
    it is evaluated in. The template is saved with the adapter's tokenizer.

``auto`` (the default) probes the tokenizer instead of trusting model names: no template means
``fallback``; a template that raises on, or drops, a system turn means ``merge_system``; otherwise
``native``. ``--chat_template_policy`` overrides the choice and ``--chat_template_file`` replaces the
template with a Jinja file of your own (the probe then runs on that template).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sycophancy_eval_kit.core.prompts import ASSISTANT_PREFIX, HUMAN_PREFIX, TURN_SEPARATOR

POLICIES: tuple[str, ...] = ("auto", "native", "merge_system", "fallback")

#: separator between a merged system text and the first user message.
SYSTEM_MERGE_SEPARATOR = "\n\n"


def _jinja_literal(text: str) -> str:
    """``text`` as a Jinja string literal (the prompt constants hold newlines)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


#: Sharma's Human/Assistant text as a chat template, built from the prompt constants (one home for
#: that format). An assistant turn that is not last is followed by the turn separator; the final one
#: is not, so the completion TRL extracts is `` answer`` and generation prompts end in ``Assistant:``.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + " + _jinja_literal(TURN_SEPARATOR) + " }}"
    "{% elif message['role'] == 'user' %}{{ "
    + _jinja_literal(HUMAN_PREFIX)
    + " + message['content'] + "
    + _jinja_literal(TURN_SEPARATOR)
    + " }}"
    "{% elif message['role'] == 'assistant' %}{{ "
    + _jinja_literal(ASSISTANT_PREFIX + " ")
    + " + message['content'] }}"
    "{% if not loop.last %}{{ " + _jinja_literal(TURN_SEPARATOR) + " }}{% endif %}"
    "{% else %}{{ raise_exception('fallback chat template: unknown role ' + message['role']) }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ " + _jinja_literal(ASSISTANT_PREFIX) + " }}{% endif %}"
)

_PROBE_SYSTEM = "Probe system text 7f3a"
_PROBE_USER = "Probe user text"


@dataclass(frozen=True)
class ChatTemplateChoice:
    """The policy a run used and why, recorded in the resolved config and the data manifest."""

    requested: str
    policy: str
    reason: str
    template_sha256: str
    template_source: str  # "tokenizer", "fallback" or the Jinja file's path

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def probe_policy(tokenizer: Any) -> tuple[str, str]:
    """Decide ``native`` / ``merge_system`` / ``fallback`` for ``tokenizer``, with the reason."""
    if not getattr(tokenizer, "chat_template", None):
        return "fallback", "the tokenizer has no chat template"
    conversation = [
        {"role": "system", "content": _PROBE_SYSTEM},
        {"role": "user", "content": _PROBE_USER},
    ]
    try:
        rendered = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    except Exception as err:  # noqa: BLE001 - jinja raise_exception, TemplateError, ValueError alike
        return "merge_system", f"the template rejects a system turn ({type(err).__name__}: {err})"
    if _PROBE_SYSTEM not in rendered:
        return "merge_system", "the template drops a system turn without an error"
    return "native", "the template renders system, user and assistant turns"


def apply_policy(
    tokenizer: Any, requested: str = "auto", template_file: str | Path | None = None
) -> ChatTemplateChoice:
    """Resolve the policy for ``tokenizer`` and install the template it needs (modifies ``tokenizer``).

    ``template_file`` (a Jinja chat template) replaces the tokenizer's template first. ``fallback``
    installs :data:`FALLBACK_CHAT_TEMPLATE`; the other policies keep the tokenizer's template and act
    on the rows instead (:func:`conform_messages`).
    """
    if requested not in POLICIES:
        raise ValueError(f"chat_template_policy={requested!r}; expected one of {', '.join(POLICIES)}")
    source = "tokenizer"
    if template_file:
        path = Path(template_file)
        if not path.is_file():
            raise FileNotFoundError(f"chat_template_file={path}: no such file (expected a Jinja template)")
        tokenizer.chat_template = path.read_text(encoding="utf-8")
        source = str(path)
    probed, reason = probe_policy(tokenizer)
    if requested == "auto":
        policy = probed
    else:
        policy = requested
        reason = f"set by chat_template_policy (the probe says {probed}: {reason})"
        if policy in ("native", "merge_system") and probed == "fallback":
            raise ValueError(
                f"chat_template_policy={policy} needs a chat template, but the tokenizer has none; use "
                "fallback (or auto), or pass chat_template_file"
            )
    if policy == "fallback":
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
        source = "fallback"
    digest = hashlib.sha256(str(tokenizer.chat_template).encode("utf-8")).hexdigest()
    return ChatTemplateChoice(requested, policy, reason, digest, source)


def merge_system_turn(messages: list[Mapping[str, str]]) -> list[dict[str, str]]:
    """Fold leading system turns into the first user turn (unchanged when there is none)."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return rest
    if not rest or rest[0]["role"] != "user":
        raise ValueError("a system turn can only be merged into a conversation that starts with a user turn")
    rest[0]["content"] = SYSTEM_MERGE_SEPARATOR.join(system) + SYSTEM_MERGE_SEPARATOR + rest[0]["content"]
    return rest


def conform_messages(messages: list[Mapping[str, str]], policy: str) -> list[dict[str, str]]:
    """The prompt messages as the chosen policy needs them."""
    if policy == "merge_system":
        return merge_system_turn(messages)
    return [dict(m) for m in messages]
