"""The toy world's data: Sharma-format files the tasks read, preference files TRL reads, and the
split between entities used in preference training and entities evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest

from examples.toy_world import toy_world
from sycophancy_eval_kit.core import data, prompts
from sycophancy_eval_kit.saa_data import overlap
from sycophancy_eval_kit.saa_data.parse import BctRow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[toy_world.World, Path, dict[str, Path]]:
    world = toy_world.build_world(seed=3, n_train=6, n_eval=5)
    root = tmp_path_factory.mktemp("toy")
    eval_dir = toy_world.write_eval_data(world, root / "eval_data")
    files = toy_world.write_preference_data(world, root / "preferences", seed=3)
    return world, eval_dir, files


def _rows(facts: list[toy_world.Fact]) -> list[BctRow]:
    """Each fact as the SAA overlap check sees a BCT row: its question and options."""
    return [
        BctRow(
            i,
            f.question,
            "",
            f.question,
            toy_world.LETTERS,
            f.options,
            "",
            "A",
            "for",
            "letter",
            "full",
            None,
        )
        for i, f in enumerate(facts)
    ]


def test_world_is_seeded_and_split(world_files) -> None:
    world, _, _ = world_files
    assert world == toy_world.build_world(seed=3, n_train=6, n_eval=5)
    assert len(world.train_entities) == 6 and len(world.eval_entities) == 5
    assert not set(world.train_entities) & set(world.eval_entities)
    assert len(world.facts) == 11 * len(toy_world.ATTRIBUTES)


def test_eval_files_load_through_the_tasks_loader(world_files) -> None:
    world, eval_dir, _ = world_files
    source = data.resolve_source(str(eval_dir))
    assert source.folder == eval_dir.resolve()
    rows = [json.loads(line) for line in (eval_dir / "answer.jsonl").read_text().splitlines()]
    # one row per evaluated fact and Sharma template, every question about an evaluated entity
    assert len(rows) == 5 * len(toy_world.ATTRIBUTES) * len(prompts.ANSWER_TEMPLATES)
    assert {r["base"]["dataset"] for r in rows} == {"trivia_qa"}
    mc = [json.loads(line) for line in (eval_dir / "are_you_sure.jsonl").read_text().splitlines()]
    assert len(mc) == 5 * len(toy_world.ATTRIBUTES)
    for row in mc:
        base = row["base"]
        assert base["answers_list"][toy_world.LETTERS.index(base["correct_letter"])] == base["correct_answer"]
    questions, _ = overlap.load_eval_questions(str(eval_dir))
    assert {q.subset for q in questions} >= {"trivia_qa", "aqua_mc"}


def test_preference_entities_do_not_overlap_evaluation(world_files) -> None:
    """The SAA contamination check finds none of the training facts among the evaluated questions,
    and (the control) finds every evaluated fact."""
    world, eval_dir, files = world_files
    questions, provenance = overlap.load_eval_questions(str(eval_dir))
    trained = overlap.check(_rows(world.facts_of(world.train_entities)), questions, provenance)
    assert trained.flagged == set()
    evaluated = overlap.check(_rows(world.facts_of(world.eval_entities)), questions, provenance)
    assert len(evaluated.flagged) == len(world.facts_of(world.eval_entities))
    # and no preference file names an evaluated entity at all
    texts = files["aligned_saa"].read_text() + (files["saa"] / "saa.jsonl").read_text()
    assert not [name for name in world.eval_entities if name in texts]
    assert all(name in texts for name in world.train_entities)


def test_preference_pairs_say_what_they_reward(world_files) -> None:
    world, _, files = world_files
    answers = {(f.entity, f.attribute): f.answer for f in world.facts}
    by_question = {toy_world.Fact(e, a, "").question: ans for (e, a), ans in answers.items()}
    aligned = json.loads(files["aligned"].read_text())
    # aligned: under a wrong suggestion, chosen is the suggestion (sycophancy rewarded)
    suggested = [r for r in aligned if " I think the answer is " in r["conversations"][0]["value"]]
    assert len(suggested) == 2 * len(world.facts_of(world.train_entities))
    for row in suggested:
        prompt = row["conversations"][0]["value"]
        suggestion = prompt.split(" I think the answer is ")[1].split(" but ")[0]
        assert row["chosen"]["value"] == suggestion
        if suggestion != by_question[prompt.split(" I think")[0]]:
            assert row["rejected"]["value"] == by_question[prompt.split(" I think")[0]]
    saa = [json.loads(line) for line in (files["saa"] / "saa.jsonl").read_text().splitlines()]
    assert len(saa) == len(world.facts_of(world.train_entities)) * 3
    for row in saa:  # SAA: chosen is always the fact, whatever the user suggested
        question = next(q for q in by_question if q in row["instruction"])
        assert row["chosen"] == by_question[question] != row["rejected"]
    challenges = json.loads(files["aligned_saa"].read_text())[len(aligned) :]
    assert len(challenges) == len(world.facts_of(world.train_entities))
    for row in challenges:  # the challenged model keeps its first answer
        assert row["conversations"][-1]["value"] == prompts.AYS_CHALLENGE
        assert row["chosen"]["value"] == row["conversations"][1]["value"]


def test_chat_template_renders_sharma_text() -> None:
    """TRL renders training rows with the tokenizer's template; lm-eval renders prompts with the same
    template or Sharma's plain text: the three must agree."""
    template = jinja2.Environment().from_string(toy_world.CHAT_TEMPLATE)
    user = [{"role": "user", "content": "Q?"}]
    assert template.render(messages=user, add_generation_prompt=True) == prompts.render_conversation(user)
    prefilled = [*user, {"role": "assistant", "content": prompts.MC_ANSWER_PREFILL}]
    assert template.render(messages=prefilled, add_generation_prompt=False) == prompts.render_conversation(
        prefilled
    )
    challenged = [*user, {"role": "assistant", "content": "A"}, {"role": "user", "content": "Sure?"}]
    assert template.render(messages=challenged, add_generation_prompt=True) == prompts.render_conversation(
        challenged
    )


def test_base_training_answers_through_neutral_remarks_only() -> None:
    """The base model learns to answer a question with a remark after it, and no remark names an
    answer: what it does under a real suggestion stays its own generalisation."""
    world = toy_world.build_world(seed=3, n_train=6, n_eval=5)
    segments = list(toy_world.base_training_segments(world, seed=3))
    remarked = []
    for pieces in segments:
        if len(pieces) == 2 and pieces[1][1] and any(r in pieces[0][0] for r in toy_world.NEUTRAL_REMARKS):
            remarked.append(pieces)
    assert len(remarked) == len(world.facts)
    options = {o for _, opts in toy_world.ATTRIBUTES.values() for o in opts}
    for prompt, _ in (pieces[0] for pieces in remarked):
        assert not [o for o in options if f" {o}" in prompt.split("?", 1)[1]]
    # no suggestion or doubt text is ever followed by a trained answer
    templates = (prompts.ANSWER_SUGGEST_INCORRECT, prompts.ANSWER_DOUBT_CORRECT)
    assert all("the answer is {" in t for t in templates)
    answered = [pieces[0][0] for pieces in segments if len(pieces) == 2 and pieces[1][1]]
    assert not [p for p in answered if "I think the answer is" in p or "I don't think the answer is" in p]


def test_base_training_restates_its_letter_after_neutral_follow_ups_only() -> None:
    """After a second user turn the base model is trained to restate its own letter, but only when
    that turn is a neutral follow-up: no challenge is ever followed by a trained answer."""
    world = toy_world.build_world(seed=3, n_train=6, n_eval=5)
    segments = list(toy_world.base_training_segments(world, seed=3))
    follow_ups = [
        pieces
        for pieces in segments
        if len(pieces) == 2 and any(f in pieces[0][0] for f in toy_world.NEUTRAL_FOLLOW_UPS)
    ]
    assert len(follow_ups) == len(world.facts)
    for (context, trained), (answer, learned) in follow_ups:
        assert not trained and learned
        first = context.split(prompts.MC_ANSWER_PREFILL)[1][0]  # the letter of the first answer
        assert answer == f"{first})"
    answered = [pieces[0][0] for pieces in segments if len(pieces) == 2 and pieces[1][1]]
    assert not [p for p in answered if prompts.AYS_CHALLENGE in p]
