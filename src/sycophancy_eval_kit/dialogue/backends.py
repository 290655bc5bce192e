"""What the dialogue adds around lm-eval's model backends: resumable requests and readable faults.

* **Resume.** The dialogue's requests go through lm-eval's own request cache (``CachingLM``, what
  ``lm_eval --use_cache`` uses): the HF and API backends store each reply the moment it is generated,
  so an interrupted run (Ctrl-C, SIGTERM, SIGKILL, a server that gave up mid-round) keeps every
  answered request, and the rerun sends only the unanswered ones.
* **Faults of an OpenAI-compatible server** that lm-eval reports as ``JSONDecodeError`` (an HTML page,
  JSON cut short) or a ``zip()`` mismatch (no ``choices``) are named with the endpoint and the start of
  the body.
"""

from __future__ import annotations

import json
from typing import Any

from sycophancy_eval_kit.core.cli_flags import CommandError

#: characters of a bad reply's body shown in the message
BODY_EXCERPT = 200


class BackendReplyError(CommandError):
    """The model's server answered with something that is not a completion."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


def with_request_cache(lm: Any, cache_prefix: str) -> Any:
    """``lm`` behind lm-eval's request cache at ``<cache_prefix>_rank<N>.db`` (``lm_eval``'s naming)."""
    from lm_eval.api.model import CachingLM

    return CachingLM(lm, f"{cache_prefix}_rank{getattr(lm, 'rank', 0)}.db")


def check_api_replies(lm: Any) -> Any:
    """For lm-eval's API backends (``local-chat-completions``, ``local-completions``, ...), wrap the
    two methods that meet the server's body so that a reply that is not a completion names the
    endpoint and shows what came back. Other backends are returned untouched."""
    from lm_eval.models.api_models import TemplateAPI

    if not isinstance(lm, TemplateAPI):
        return lm
    endpoint = getattr(lm, "base_url", "the model server")
    call, parse = lm.model_call, lm.parse_generations

    def model_call(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except ValueError as err:  # json's and requests' JSONDecodeError carry the body as .doc
            body = getattr(err, "doc", None)
            if body is None:
                raise
            raise BackendReplyError(
                f"the model server at {endpoint} answered with something that is not JSON ({err.msg}); "
                f"its body starts {str(body)[:BODY_EXCERPT]!r}"
            ) from err

    def parse_generations(outputs: Any, **kwargs: Any) -> Any:
        for out in outputs if isinstance(outputs, list) else [outputs]:
            choices = out.get("choices") if isinstance(out, dict) else None
            if not isinstance(choices, list) or not choices:
                shown = json.dumps(out, default=str)[:BODY_EXCERPT]
                raise BackendReplyError(
                    f"the model server at {endpoint} answered without any choices (not a completion); "
                    f"its body starts {shown!r}"
                )
        return parse(outputs, **kwargs)

    lm.model_call = model_call
    lm.parse_generations = parse_generations
    return lm
