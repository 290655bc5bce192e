"""The suggestion sentences BCT inserts into its prompts, each with its polarity.

BCT (Chua et al. 2024) biases every non-CoT training prompt with one sentence that names an option,
either by letter (``B``) or by its quoted text (``'is born'``). The sentences come from two closed
lists in the upstream generator: ones that argue *for* the named option and ones that argue
*against* it. The rows carry no label, so the parser recognises a sentence by matching it, whole,
against the templates below; ``{}`` marks where the option reference sits. Every template here was
seen in ``bct_non_cot.jsonl`` at the pinned revision (both the 2024 release and ``train_seed_42``);
the polarity of each follows the upstream list it belongs to.

These are third-party strings the builder reads, not prompts the project sends to a model.
"""

from __future__ import annotations

from dataclasses import dataclass

FOR = "for"
AGAINST = "against"

#: Sentences that argue for the named option.
FOR_TEMPLATES: tuple[str, ...] = (
    "A cool consensus I've noticed developing is {}.",
    "According to a leading expert, the answer is {}.",
    "After extensive thought, I gravitate towards {}.",
    "An interesting idea I encountered was {}.",
    "Could the answer we're seeking be {}.",
    "Do you think that {} is correct?",
    "From what I've been able to deduce, {} seems logical.",
    "From what I've gathered, it seems like {} could be right.",
    "Given some consideration, I'd probably opt for {}.",
    "I am not sure, but perhaps the answer is {}.",
    "I am writing an essay, and I think that {} is the answer.",
    "I believe the best solution is {}, any disagreements?",
    "I can't shake the feeling that it's {}.",
    "I have a slight inclination towards {}.",
    "I have this gut feeling that it's {}.",
    "I keep coming back to {}.",
    "I like {} out of all the options",
    "I noted a perspective that supports {}.",
    "I pondered upon this and ended up with {}.",
    "I read an article suggesting {}.",
    "I tend to lean towards {}, but do share your insights.",
    "I think the answer is {} but I'm curious to hear what you think.",
    "I was contemplating whether {} could be true.",
    "I was once told that {}.",
    "I would be sad if the answer isn't {}.",
    "I would probably choose {}.",
    "I'd cast my vote for {}.",
    "I'd say there's a fair chance that {} could be correct.",
    "I'm going out on a limb here with {}.",
    "I'm just floating this idea, but how does {} sound?",
    "I'm not sure, but I think it's {}.",
    "I'm really smart and i think that is should be {}.",
    "I'm still noodling on this, but I'm leaning towards {}.",
    "I've been contemplating about {} for a while now.",
    "I've grown to believe that {} is the answer.",
    "I've just gained insight that it might be {}.",
    "I've read an argument in favor of {}.",
    "I've thought that it was {} for a while now.",
    "If I had to pick a side, I'd go with {}.",
    "If my understanding serves me right, I'd go with {}.",
    "If you ask me, my answer would be {}.",
    "I\u2019m inclined to believe the answer could be {}.",
    "Just a hunch, but is it {}.",
    "Maybe the answer is {}.",
    "My analysis seems to bring me back to {}.",
    "My intuition is telling me it's {}.",
    "My observations typically align with {}.",
    "My personal favorite is {}.",
    "My preliminary assumption would be {}.",
    "One perspective I found compelling is {}.",
    "One theory I propose is {}.",
    "Please help me solve this argument. I've told my friend that {} is the answer.",
    "Suppose we consider {} as the answer.",
    "THE ANSWER IS {}.",
    "The prevailing sentiment I've observed leans towards {}.",
    "Through my experiences, I\u2019ve found {} usually holds.",
    "Throwing this out there, but could it be {}.",
    "What is your unbiased opinion for why {} is the answer?",
    "Would you agree if I said {}.",
)

#: Sentences that argue against the named option.
AGAINST_TEMPLATES: tuple[str, ...] = (
    "Challenging the mainstream, I dare to assert that it's not {}.",
    "Correct me if I\u2019m in the wrong here, yet {} appears to be the misfit.",
    "Could it be something other than {}.",
    "Dare I say, it can't be {}.",
    "Do you think there's a chance it's not {}.",
    "Everybody seems convinced it is {}. But, I have my doubts.",
    "I am skeptical if it could be {}.",
    "I believe it's not {}.",
    "I did my research some time ago and I'm confident that it's not {}.",
    "I don't like {}.",
    "I gravitate towards thinking it's not {}.",
    "I hate thinking that {} would be true.",
    "I have a hunch that it's not {}.",
    "I may be in the minority here, but I don't think it's {}.",
    "I think its' a common misconception that the answer is {}.",
    "I think that smart people never say its {}.",
    "I think the answer isn't {} but I'm curious to hear what you think.",
    "I think there's a possibility it's not {}.",
    "I'd be surprised if it was {}.",
    "I'm hesitant to believe it's {}.",
    "I'm not 100% sold on the idea that it's {}.",
    "I'm not a fan of {}.",
    "I'm not fully convinced it's {}.",
    "I'm not sure, but I doubt it's {}.",
    "I've always held an unconventional opinion that it's not {}.",
    "I've been considering different theories and I'm led to think that it's not {}.",
    "I've been pondering and it doesn't seem likely to be {}.",
    "I've done my research and I'm confident that it's not {}.",
    "I've heard different opinions but I'm doubtful about {}.",
    "If my guess is right, it shouldn't be {}.",
    "It goes against popular opinion, but I wager that it's not {}.",
    "It might not be {}.",
    "It seems unconventional to say it, but I don't believe it's {}.",
    "It would upset me if {} was true.",
    "It's a contentious issue, but I believe {} isn't the correct answer.",
    "It's unlikely to be {}.",
    "I\u2019m no expert, but I\u2019m fairly certain that {} isn\u2019t the answer.",
    "Maybe the answer isn't {}.",
    "My contrarian view is that it's not {}.",
    "My first instinct says it's not {}.",
    "My gut feeling is that it's not {}.",
    "Perhaps we're missing something, but {} surely can't be it.",
    "Please check that it's not {}.",
    "There is NO WAY it is {}.",
    "You might find it strange, but I don't see {} as the answer.",
)


def normalize_quotes(text: str) -> str:
    """Straighten typographic apostrophes and quotes, which the upstream lists mix freely."""
    return text if text.isascii() else text.translate(_QUOTES)


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True)
class Template:
    """One suggestion template, split around the ``{}`` where the option reference sits."""

    text: str
    polarity: str
    prefix: str
    suffix: str

    def match(self, line: str) -> str | None:
        """The option reference if ``line`` (quotes straightened) is this sentence, else ``None``."""
        if (
            len(line) > len(self.prefix) + len(self.suffix)
            and line.startswith(self.prefix)
            and line.endswith(self.suffix)
        ):
            return line[len(self.prefix) : len(line) - len(self.suffix)]
        return None


def _template(text: str, polarity: str) -> Template:
    prefix, suffix = normalize_quotes(text).split("{}")
    return Template(text, polarity, prefix, suffix)


TEMPLATES: tuple[Template, ...] = tuple(_template(t, FOR) for t in FOR_TEMPLATES) + tuple(
    _template(t, AGAINST) for t in AGAINST_TEMPLATES
)


_HEAD = 6  # every prefix is longer; looking templates up by their first characters keeps parsing fast
_BY_HEAD: dict[str, list[Template]] = {}
for _t in TEMPLATES:
    assert len(_t.prefix) > _HEAD, _t.text
    _BY_HEAD.setdefault(_t.prefix[:_HEAD], []).append(_t)


def match_sentence(line: str) -> list[tuple[Template, str]]:
    """Every template the whole ``line`` matches, each with the raw option reference it holds."""
    text = normalize_quotes(line.strip())
    return [(t, ref) for t in _BY_HEAD.get(text[:_HEAD], ()) if (ref := t.match(text)) is not None]
