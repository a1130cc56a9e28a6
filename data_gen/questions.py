"""Every question stage two is trained and scored on, in one place, and which of them training sees.

Why one module: the model is scored on the question it is built for (:data:`DESIGN_QUESTION`), so
the training data, the inference tools, the exporter's parity check and the QA harness must all
import the *same* constant; and robustness to wording is only measured if some phrasings are kept
out of training (:data:`HELDOUT_ADDRESS_QUESTIONS`, :data:`HELDOUT_UNANSWERABLE_QUESTIONS`).

- Address questions are built compositionally (a "where" opening times an address request, plus
  free-standing phrasings), so the model meets the design question and the AddressCLIP authors'
  question (:data:`POSTER_QUESTION`) among a few hundred wordings instead of memorising eight.
- Unanswerable questions reuse the *same* frames with another target ("When was this photo taken?
  Tell me its exact date." next to "Where was this photo taken? Tell me its street-level
  address."): they differ from address questions by what they ask, not by surface words, so a
  refusal cannot be learnt from the frame alone.
- Held-out phrasings use openings and requests that no training question contains (a test checks
  that no held-out question, normalised, equals or is built from training pieces).

No question names a street, district, city or country (``data_gen.conversations.check_no_leak``).
"""

from __future__ import annotations

import re
from itertools import product

# The question the project is built for, the default everywhere (training, inference, export
# parity check, vLLM parity, the QA harness).
DESIGN_QUESTION = "Where was this photo taken? Tell me its street-level address."
# The question the AddressCLIP authors asked general multimodal models on their ECCV 2024 poster.
POSTER_QUESTION = "Where might this photo have been taken? Tell me its street level address."

# ---- address questions seen in training -------------------------------------------------------
# What a question calls the photo, and how it says "taken": many words for both, so an unfamiliar
# one is not a cue (the tiny LM is trained from scratch; a word it never saw must not mean "refuse").
OBJECTS = ("photo", "picture", "image", "street view", "shot", "snapshot", "photograph", "scene",
           "view", "pic")
WHERE_OPENINGS = tuple(
    [f"Where was this {o} {v}?" for o in OBJECTS for v in ("taken", "captured")]
    + [f"Where {m} this {o} have been taken?" for o in OBJECTS for m in ("might", "could")]
    + [f"Where is this {o} from?" for o in OBJECTS]
    + ["Where is this?", "Where is this place?", "Where is this street?", "Where am I?"]
    # the same "... was this photo taken?" frame as the date questions, opened by a place word:
    # what is asked (street, address) decides, not the first word
    + [f"{w} was this {o} {v}?" for w in ("In which street", "At which address", "Along which street",
                                          "In what part of the city", "Near which street")
       for o in OBJECTS[::2] for v in ("taken", "captured")])
ADDRESS_REQUESTS = (
    "Tell me its street-level address.",
    "Tell me its street level address.",
    "Tell me the street address.",
    "Answer with the street address.",
    "Give the street address.",
    "Please give the address.",
    "What is the address?",
    "Give the street, district and city.",
    "Name the street and the district.",
    "Answer with an address.",
    "",
)
STANDALONE_ADDRESS_QUESTIONS = (
    "What is the address of the place in this photo?",
    "What is the street address of this place?",
    "Which street is shown in this image, and in which district and city?",
    "Can you tell me where this street view was taken?",
    "Give the street, district and city where this picture was taken.",
    "What address does this image show?",
    "Identify the location of this street photo as an address.",
    "Which street is this, and in which district?",
    "What street is this photo on?",
    "Tell me the address of this street view.",
    "At what address was this picture taken?",
    "What is the street-level address of this photo?",
    "Please tell me where this was taken, as a street address.",
    "Name the address where this image was taken.",
    "In which street and district is this?",
    "Which address is this?",
    "What's the address of this place?",
    "Which street is this picture from?",
    "Can you place this photo? Tell me which street.",
    "Could you find this place on a map? Give the street address.",
    "Do you recognise this street? Give its address.",
    "Can you identify this street? Tell me its name and district.",
    "Here is a photo. What is its address?",
    "I took this picture. Where was I?",
)


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


ADDRESS_QUESTIONS = tuple(dict.fromkeys(
    [DESIGN_QUESTION, POSTER_QUESTION]
    + [_join(o, r) for o, r in product(WHERE_OPENINGS, ADDRESS_REQUESTS)]
    + list(STANDALONE_ADDRESS_QUESTIONS)))

ADDRESS_ANSWERS = (
    "The address of this photo might be {address}.",
    "This photo was probably taken at {address}.",
    "It looks like {address}.",
    "This street view appears to be {address}.",
    "The picture was most likely taken on {address}.",
    "Its street-level address is probably {address}.",
    "Most likely {address}.",
    "{address}.",
)

# ---- district first, then the street ----------------------------------------------------------
DISTRICT_QUESTIONS = (
    "Which district is this photo from?",
    "In which district of the city was this picture taken?",
    "What neighbourhood does this street view show?",
    "Which part of the city is this?",
    "Which district was this photo taken in?",
    "Where was this photo taken? Just the district, please.",
    "What district is shown here?",
    "Name the neighbourhood of this picture.",
)
DISTRICT_ANSWERS = (
    "This looks like {district}, {city}.",
    "It appears to be the district of {district} in {city}.",
    "Probably {district}, {city}.",
    "The district is most likely {district}, {city}.",
)
STREET_FOLLOWUPS = (
    "And which street is it?",
    "Can you narrow it down to the street?",
    "Which street in that district?",
    "What is the street address, then?",
    "And the exact street?",
    "Now tell me its street-level address.",
    "Which street exactly?",
)
STREET_ANSWERS = (
    "The street is probably {street}, so the address might be {address}.",
    "It seems to be {street}: {address}.",
    "Most likely {street}, which gives {address}.",
    "The address is probably {address}.",
)
SCENE_FOLLOWUPS = (
    "Describe what you see in the scene.",
    "What else can you tell me about the scene?",
    "Please describe the street in the picture.",
    "What does the street look like?",
)

# ---- questions a street photo cannot answer ---------------------------------------------------
# topic -> (questions sharing the address questions' frames, refusal). Every refusal starts with a
# phrase eval.address_parser reads as a refusal ("I can't tell ...").
UNANSWERABLE_TOPICS: dict[str, tuple[tuple[str, ...], str]] = {
    "date": (tuple(f"When was this {o} taken?" for o in OBJECTS)
             + tuple(f"What year was this {o} taken?" for o in OBJECTS[::2]) + (
              "When was this photo taken? Tell me its exact date.",
              "When might this photo have been taken? Tell me the exact date.",
              "What year was this photo taken?", "What year was this picture taken? Answer with the year.",
              "In which year was this street view taken?", "What is the date of this photo?"),
             "I can't tell when this photo was taken; nothing in it shows the date."),
    "time": (("What is the exact time, to the minute, when this was taken?",
              "At what time was this photo taken? Tell me the exact minute.",
              "What time does the clock show, to the second, when this was shot?"),
             "I can't tell the exact time from this photo."),
    "photographer": (tuple(f"Who took this {o}?" for o in OBJECTS[1::2]) + (
                      "Who took this photo? Tell me their name.",
                      "Who might have taken this photo? Give their full name.",
                      "What is the name of the photographer?"),
                     "I can't tell who took this picture; the photographer is not visible."),
    "residents": (("What is the name of the person who lives in the nearest building?",
                   "Who lives at this address? Tell me their name.",
                   "Which family lives in the house on the left?"),
                  "I can't know who lives there; a street photo does not show that."),
    "weather": (("What will the weather be like here tomorrow?",
                 "What will the weather be here next week? Give the forecast.",
                 "Will it rain at this place tomorrow?"),
                "I can't predict the weather from a photo."),
    "camera": (tuple(f"What camera was this {o} taken with?" for o in OBJECTS[::3]) + (
               "What camera model was used to take this image?",
                "Which camera took this photo? Tell me its model.",
                "What lens was this picture taken with?"),
               "I can't tell the camera or lens from the image itself."),
    "price": (("How much does an apartment on this street cost?",
               "What is the price of the nearest building? Give the exact amount.",
               "What is the rent of the flat above the shop?"),
              "I can't tell prices from this photo; it shows no such information."),
    "thoughts": (("What was the photographer thinking when this was taken?",
                  "Why was this photo taken? Tell me the reason."),
                 "I can't know why or with what thoughts this photo was taken."),
}
UNANSWERABLE = tuple((q, refusal) for qs, refusal in UNANSWERABLE_TOPICS.values() for q in qs)
REFUSALS = tuple(refusal for _, refusal in UNANSWERABLE_TOPICS.values())

# Words around a first question, drawn alike for address and unanswerable questions (so they are
# no cue to either): a model that meets "Hey, ..." or "... Thanks!" still answers what is asked.
PREFIXES = ("Quick question:", "Hey,", "Hmm,", "Please help:", "Okay,", "I have a question.",
            "Look at this.", "Tell me something.", "Here is a picture.", "I have a photo here.",
            "Someone sent me this.", "Help me out.")
SUFFIXES = ("Thanks!", "Thank you.", "Be brief.", "One line, please.", "Please answer.",
            "Keep it short.")
DECORATED_SHARE = 0.3     # of first questions get a prefix, as many a suffix (independently)


def decorate(question: str, rng) -> str:
    """``question`` with, sometimes, a prefix and a suffix (``rng``: a ``random.Random``)."""
    head = rng.choice(PREFIXES) if rng.random() < DECORATED_SHARE else ""
    tail = rng.choice(SUFFIXES) if rng.random() < DECORATED_SHARE else ""
    if head.endswith(","):                    # "Hey, where was ..."
        question = question[:1].lower() + question[1:]
    return " ".join(p for p in (head, question, tail) if p)

# ---- held out: never in training; evaluated by eval.qa_eval --prompts heldout ... -------------
HELDOUT_ADDRESS_QUESTIONS = (
    "Could you work out the street address of this scene?",
    "On which street was this snapshot taken?",
    "I found this photo. What's the address?",
    "Where in the city is this? I need the street address.",
    "What's the street-level address of this location?",
    "Please locate this photo: street, district and city.",
    "Which address is pictured here?",
    "Do you know the street and neighbourhood where this was photographed?",
    "Where exactly is this street view from? Give me the address.",
    "From which street was this photograph taken? Reply with its address.",
    "Tell me which street this is and the district it is in.",
    "Can you locate this image? Name the street.",
    "Where is this scene located? An address, please.",
    "What location is this? Answer as a street address.",
    "Where would I have to stand to take this photo? Give me the street address.",
    "Guess the address of this picture.",
)
HELDOUT_UNANSWERABLE_QUESTIONS = (
    "On what date was this snapshot taken?",
    "When exactly was this photograph taken? Give me the date.",
    "Which year is this scene from?",
    "What time was it, to the minute, when this photograph was taken?",
    "Who is the photographer of this scene?",
    "Who photographed this? Give me the name.",
    "Who is living in the building on the right? Their name, please.",
    "What is tomorrow's weather forecast for this place?",
    "What camera brand was this photograph taken with?",
    "How much would it cost to buy the nearest building?",
    "What was the photographer feeling at that moment?",
    "When was this street view captured? Tell me the year.",
)

# Named question sets for the QA harness (eval.qa_eval --prompts NAME): item i gets phrasing
# i mod len(set), so every phrasing of a set is asked about a spread of images.
PROMPT_SETS: dict[str, tuple[str, ...]] = {
    "design": (DESIGN_QUESTION,),
    "poster": (POSTER_QUESTION,),
    "train": ADDRESS_QUESTIONS,
    "heldout": HELDOUT_ADDRESS_QUESTIONS,
    "heldout_unanswerable": HELDOUT_UNANSWERABLE_QUESTIONS,
}


# Candidate-aware answering: AddressCLIP's top streets (python -m addressclip.candidates) on a line
# before the question, in training and in the QA harness alike.
CANDIDATES_PREFIX = "Candidates from retrieval: "


def street_label(street: str, district: str) -> str:
    """One candidate as the list names it ("Street, District"): the level LLaVA-IAL answers at."""
    return f"{street}, {district}"


def with_candidates(question: str, candidates: list[str]) -> str:
    """The question preceded by one line that lists the candidate addresses, best first."""
    return f"{CANDIDATES_PREFIX}{'; '.join(candidates)}.\n{question}"


def without_candidates(text: str) -> str:
    """``text`` with the candidate line of :func:`with_candidates` removed (for the leak check)."""
    return re.sub(rf"(?m)^{re.escape(CANDIDATES_PREFIX)}[^\n]*\n", "", text)


def load_candidates(path, split: str) -> dict[str, list[str]]:
    """``{image id: [address, ...]}`` of one split of an ``addressclip.candidates`` file."""
    import json
    from pathlib import Path

    from ial_core.errors import DataError
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        table = data["splits"][split]
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read candidates ({exc})", path=path) from None
    except (KeyError, TypeError):
        raise DataError(f"no split {split!r} under 'splits' (write it with python -m "
                        "addressclip.candidates)", path=path) from None
    bad = next((k for k, v in table.items() if not isinstance(v, list) or not v
                or not all(isinstance(a, str) and a for a in v)), None)
    if bad is not None:
        raise DataError(f"split {split!r}, image {bad!r}: expected a non-empty list of addresses",
                        path=path)
    return table


def normalized(question: str) -> str:
    """Lower case, letters and digits only, single spaces: what counts as the same wording."""
    return " ".join(re.findall(r"[a-z0-9]+", question.lower()))


def training_questions() -> tuple[str, ...]:
    """Every question (first or follow-up turn) training conversations can contain, undecorated."""
    return (ADDRESS_QUESTIONS + DISTRICT_QUESTIONS + STREET_FOLLOWUPS + SCENE_FOLLOWUPS
            + tuple(q for q, _ in UNANSWERABLE))


def sentences(text: str) -> set[str]:
    """The normalised sentences of ``text`` (what held-out phrasings must not share with training)."""
    return {normalized(s) for s in re.split(r"(?<=[?.!:])\s+", text) if normalized(s)}


def training_sentences() -> set[str]:
    """Every sentence a training question can contain, decorations included."""
    return set().union(*(sentences(t) for t in training_questions() + PREFIXES + SUFFIXES))


def undecorated(text: str) -> str:
    """``text`` without a prefix or suffix of :func:`decorate`."""
    for head in PREFIXES:
        if text.startswith(head + " "):
            text = text[len(head) + 1:]
            if head.endswith(","):
                text = text[:1].upper() + text[1:]
            break
    for tail in SUFFIXES:
        if text.endswith(" " + tail):
            text = text[:-len(tail) - 1]
            break
    return text


def prompt_set(name: str) -> tuple[str, ...]:
    """The questions of a named set; ValueError listing the names for an unknown one."""
    try:
        return PROMPT_SETS[name]
    except KeyError:
        raise ValueError(f"unknown question set {name!r}; the sets are {sorted(PROMPT_SETS)}") \
            from None
