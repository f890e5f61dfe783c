"""Conversations with individuals: surveys a company asks its customers, and comment threads.

Pure rules, no I/O: what a survey may ask, what an answer and a sharing choice must look like,
how a survey's answers become dataset versions whose consent gate carries each person's
choice, which agreements may share them, and how a thread's status moves.

Why one answer dataset per party in the survey's audience: the store's consent gate filters a
dataset's rows per *purpose* (see services/consent.py). A person chooses parties *and*
purposes; giving each party its own copy of the answers (the asker's is named like the survey,
a partner's `<survey>__<partner>`) turns "may party P use my answer for purpose U" into an
ordinary consent record on P's copy, so every query, export and receipt reuses the one gate.
`agreement_gaps` keeps a partner's copy from being granted to anyone but that partner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Mapping

from .errors import BadInput
from .names import check_name

MAX_QUESTIONS = 20
MAX_OPTIONS = 20
MAX_TEXT_ANSWER = 500
MAX_QUESTION_TEXT = 500
MAX_TITLE = 200
MAX_MESSAGE = 4000
DEFAULT_MIN_GROUP_SIZE = 5
RESPONDENT = "respondent"
ANSWER_CATEGORY = "user.content.private"
SUBJECT_CATEGORY = "user.unique_id"


class QuestionType(str, Enum):
    CHOICE = "choice"
    NUMBER = "number"
    TEXT = "text"
    YES_NO = "yes_no"


_COLUMN_TYPES = {QuestionType.CHOICE: "string", QuestionType.NUMBER: "double", QuestionType.TEXT: "string",
                 QuestionType.YES_NO: "boolean"}


@dataclass(frozen=True)
class Question:
    id: str  # becomes the answer column's name
    text: str
    type: QuestionType
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text, "type": self.type.value}
        if self.options:
            out["options"] = list(self.options)
        if self.minimum is not None:
            out["min"] = self.minimum
        if self.maximum is not None:
            out["max"] = self.maximum
        return out


@dataclass(frozen=True)
class Survey:
    name: str
    asker: str
    title: str
    purposes: tuple[str, ...]  # what the answers may be used for; each person picks among them
    questions: tuple[Question, ...]
    partners: tuple[str, ...] = ()  # besides the asker, who may be offered the answers
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE

    @property
    def audience(self) -> tuple[str, ...]:
        return (self.asker, *self.partners)

    def copy_name(self, party: str) -> str:
        """The dataset (of the asker) holding the answers as `party` may read them."""
        if party not in self.audience:
            raise BadInput(f"{party} is not in the audience of survey {self.name} ({', '.join(self.audience)})")
        return self.name if party == self.asker else f"{self.name}__{party}"

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise BadInput(f"survey {self.name} has no question {qid!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "asker": self.asker, "title": self.title, "purposes": list(self.purposes),
                "questions": [q.to_dict() for q in self.questions], "partners": list(self.partners),
                "min_group_size": self.min_group_size}


def parse_survey(doc: Any, asker: str) -> Survey:
    """Validate a survey document (YAML/JSON); every error names what is wrong."""
    if not isinstance(doc, Mapping):
        raise BadInput("survey must be a mapping with name, title, purposes and questions")
    unknown = set(doc) - {"name", "title", "purposes", "questions", "partners", "min_group_size"}
    if unknown:
        raise BadInput(f"survey: unknown key(s) {sorted(unknown)}")
    name = check_name("survey", str(doc.get("name", "")))
    title = str(doc.get("title", "")).strip()
    if not title or len(title) > MAX_TITLE:
        raise BadInput(f"survey: title must be 1 to {MAX_TITLE} characters")
    purposes = _strings(doc.get("purposes"), "purposes")
    if not purposes:
        raise BadInput("survey: name at least one purpose the answers are for")
    partners = _strings(doc.get("partners", []), "partners")
    for p in partners:
        check_name("party", p)
        if p == asker:
            raise BadInput("survey: partners are the other parties; you always see your own survey")
        if len(f"{name}__{p}") > 63:
            raise BadInput(f"survey: name {name!r} with partner {p!r} is too long for a dataset name (63)")
    k = doc.get("min_group_size", DEFAULT_MIN_GROUP_SIZE)
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise BadInput("survey: min_group_size must be an integer of at least 2")
    raw = doc.get("questions")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_QUESTIONS:
        raise BadInput(f"survey: questions must be a list of 1 to {MAX_QUESTIONS}")
    questions = tuple(_question(n, q) for n, q in enumerate(raw, start=1))
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids) or RESPONDENT in ids:
        raise BadInput(f"survey: question ids must be unique and not {RESPONDENT!r}")
    return Survey(name, asker, title, tuple(dict.fromkeys(purposes)), questions, tuple(dict.fromkeys(partners)), k)


def survey_from_dict(spec: Mapping[str, Any]) -> Survey:
    """A survey as stored (its `to_dict`), already checked when it was created."""
    questions = tuple(Question(q["id"], q["text"], QuestionType(q["type"]), tuple(q.get("options", ())),
                               q.get("min"), q.get("max")) for q in spec["questions"])
    return Survey(spec["name"], spec["asker"], spec["title"], tuple(spec["purposes"]), questions,
                  tuple(spec["partners"]), int(spec["min_group_size"]))


def _strings(raw: Any, what: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise BadInput(f"survey: {what} must be a list of names")
    return [x.strip() for x in raw]


def _question(n: int, raw: Any) -> Question:
    where = f"survey: question {n}"
    if not isinstance(raw, Mapping):
        raise BadInput(f"{where} must be a mapping with id, text and type")
    unknown = set(raw) - {"id", "text", "type", "options", "min", "max"}
    if unknown:
        raise BadInput(f"{where}: unknown key(s) {sorted(unknown)}")
    qid = check_name("question id", str(raw.get("id", "")))
    text = str(raw.get("text", "")).strip()
    if not text or len(text) > MAX_QUESTION_TEXT:
        raise BadInput(f"{where}: text must be 1 to {MAX_QUESTION_TEXT} characters")
    try:
        qtype = QuestionType(raw.get("type"))
    except ValueError:
        raise BadInput(f"{where}: type must be one of {', '.join(t.value for t in QuestionType)}") from None
    options: tuple[str, ...] = ()
    if qtype is QuestionType.CHOICE:
        options = tuple(_strings(raw.get("options"), f"question {n} options"))
        if not 2 <= len(options) <= MAX_OPTIONS or len(set(options)) != len(options):
            raise BadInput(f"{where}: a choice needs 2 to {MAX_OPTIONS} distinct options")
    elif "options" in raw:
        raise BadInput(f"{where}: only choice questions have options")
    bounds = [raw.get(k) for k in ("min", "max")]
    if any(b is not None for b in bounds):
        if qtype is not QuestionType.NUMBER or not all(b is None or _finite(b) for b in bounds):
            raise BadInput(f"{where}: min and max are numbers, for number questions only")
        if None not in bounds and bounds[0] > bounds[1]:
            raise BadInput(f"{where}: min is above max")
    return Question(qid, text, qtype, options, *(None if b is None else float(b) for b in bounds))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_answers(survey: Survey, answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answer values as stored: every question answered or skipped (None), each of its type."""
    unknown = set(answers) - {q.id for q in survey.questions}
    if unknown:
        raise BadInput(f"survey {survey.name} has no question(s) {sorted(unknown)}")
    out: dict[str, Any] = {}
    for q in survey.questions:
        value = answers.get(q.id)
        out[q.id] = None if value is None or value == "" else _answer(q, value)
    if all(v is None for v in out.values()):
        raise BadInput("answer at least one question")
    return out


def _answer(q: Question, value: Any) -> Any:
    where = f"question {q.id!r}"
    if q.type is QuestionType.CHOICE:
        if str(value) not in q.options:
            raise BadInput(f"{where}: choose one of {', '.join(q.options)}")
        return str(value)
    if q.type is QuestionType.YES_NO:
        text = str(value).strip().lower()
        if isinstance(value, bool) or text in ("yes", "no", "true", "false"):
            return value if isinstance(value, bool) else text in ("yes", "true")
        raise BadInput(f"{where}: answer yes or no")
    if q.type is QuestionType.NUMBER:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BadInput(f"{where}: answer a number") from None
        if not math.isfinite(number):
            raise BadInput(f"{where}: answer a number")
        if (q.minimum is not None and number < q.minimum) or (q.maximum is not None and number > q.maximum):
            low = "" if q.minimum is None else f" from {q.minimum:g}"
            high = "" if q.maximum is None else f" up to {q.maximum:g}"
            raise BadInput(f"{where}: answer a number{low}{high}")
        return number
    text = str(value).strip()
    if len(text) > MAX_TEXT_ANSWER:
        raise BadInput(f"{where}: at most {MAX_TEXT_ANSWER} characters")
    return text


def check_sharing(survey: Survey, choices: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """A person's choice: which (party, purpose) may use their answer. Anything outside the
    survey's audience and purposes is an error, not silently dropped."""
    out = set()
    for party, purpose in choices:
        if party not in survey.audience:
            raise BadInput(f"{party} is not offered this survey's answers (choose among {', '.join(survey.audience)})")
        if purpose not in survey.purposes:
            raise BadInput(f"purpose {purpose} is not one this survey asks for ({', '.join(survey.purposes)})")
        out.add((party, purpose))
    return frozenset(out)


def parse_choice(text: str) -> tuple[str, str]:
    """`party:purpose`, as the CLI and web forms spell one sharing choice."""
    party, sep, purpose = text.partition(":")
    if not sep or not party.strip() or not purpose.strip():
        raise BadInput(f"a sharing choice is PARTY:PURPOSE, not {text!r}")
    return party.strip(), purpose.strip()


def consent_changes(survey: Survey, before: frozenset[tuple[str, str]], after: frozenset[tuple[str, str]]
                    ) -> list[tuple[str, str, str]]:
    """(copy dataset name, purpose, granted|withdrawn) records turning `before` into `after`."""
    grants = [(survey.copy_name(p), u, "granted") for p, u in sorted(after - before)]
    withdrawals = [(survey.copy_name(p), u, "withdrawn") for p, u in sorted(before - after)]
    return grants + withdrawals


def answer_schema(survey: Survey) -> dict[str, Any]:
    """The schema of every copy: the respondent (the person's subject id at the asker), one
    column per question, opt-in consent that gates every purpose (no one's answer is used
    for anything they did not choose)."""
    columns: dict[str, Any] = {RESPONDENT: {"type": "string", "role": "subject_id", "category": SUBJECT_CATEGORY}}
    for q in survey.questions:
        role = "sensitive" if q.type is QuestionType.TEXT else "attribute"
        columns[q.id] = {"type": _COLUMN_TYPES[q.type], "role": role, "category": ANSWER_CATEGORY}
    return {"consent": "opt_in", "columns": columns}


def agreement_gaps(copies: Mapping[str, tuple[str, int]], datasets: Iterable[str], recipients: Iterable[str],
                   mode: str, min_group_size: int) -> list[str]:
    """Why an agreement may not share survey answers. `copies`: copy dataset key -> (the party
    it is for, the survey's k). A copy is for its one party, in aggregate, over ≥ k people."""
    reasons = []
    recipients = tuple(recipients)
    for key in datasets:
        if key not in copies:
            continue
        party, k = copies[key]
        if recipients != (party,):
            reasons.append(f"{key} holds survey answers people chose to share with {party} only; "
                           f"it cannot go to {', '.join(recipients)}")
        if mode != "aggregate":
            reasons.append(f"{key} holds survey answers: share it in aggregate mode, not {mode}")
        if min_group_size < k:
            reasons.append(f"{key} holds survey answers: min_group_size must be at least the survey's {k}")
    return reasons


# -- threads -------------------------------------------------------------------------------

class ThreadKind(str, Enum):
    COMMENT = "comment"
    DISPUTE = "dispute"


class ThreadAbout(str, Enum):
    RECEIPT = "receipt"
    OFFER = "offer"


class ThreadStatus(str, Enum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


def status_after_message(current: ThreadStatus, by_person: bool) -> ThreadStatus:
    """The person writing (re)opens the thread; the company writing answers it. Closed is final."""
    if current is ThreadStatus.CLOSED:
        raise BadInput("this thread is closed; open a new one")
    return ThreadStatus.OPEN if by_person else ThreadStatus.ANSWERED


def check_message(body: str) -> str:
    text = body.strip()
    if not text or len(text) > MAX_MESSAGE:
        raise BadInput(f"a message is 1 to {MAX_MESSAGE} characters")
    return text
