"""HTTP routes for conversations: surveys and their answers, comment and dispute threads.

Thin, like the rest of the API: authenticate, call a service, shape the answer. Who may see
what is decided in the services; a survey or thread the caller has no part in is a 404.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional, Union

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ..domain.conversations import MAX_MESSAGE
from ..domain.records import Party
from ..services import conversations as survey_svc
from ..services import threads as thread_svc
from ..services.deps import Deps


class SurveyDocument(BaseModel):
    document: dict[str, Any]


class Choice(BaseModel):
    party: str = Field(..., min_length=1, max_length=63)
    purpose: str = Field(..., min_length=1, max_length=200)


class SurveyAnswer(BaseModel):
    answers: dict[str, Optional[Union[bool, float, str]]] = Field(..., max_length=50)
    share: list[Choice] = Field(default_factory=list, max_length=200)


class Sharing(BaseModel):
    share: list[Choice] = Field(default_factory=list, max_length=200)


class NewThread(BaseModel):
    about: Literal["receipt", "offer"]
    ref: str = Field(..., min_length=1, max_length=64)
    kind: Literal["comment", "dispute"] = "comment"
    message: str = Field(..., min_length=1, max_length=MAX_MESSAGE)


class Message(BaseModel):
    message: str = Field(..., min_length=1, max_length=MAX_MESSAGE)


def conversation_routes(deps: Deps, caller: Callable[..., Party]) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/surveys", status_code=201, tags=["conversations"])
    def create(body: SurveyDocument, party: Party = Depends(caller)) -> dict[str, Any]:
        """Ask your linked customers a survey; its answers become consent-gated datasets of yours."""
        return survey_svc.create_survey(deps, party.name, body.document)

    @router.get("/surveys", tags=["conversations"])
    def surveys(party: Party = Depends(caller)) -> list[dict[str, Any]]:
        """Your surveys (organisation), or those asked of you with your answers (individual)."""
        return survey_svc.list_surveys(deps, party.name)

    @router.get("/surveys/{survey_id}", tags=["conversations"])
    def survey(survey_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        return survey_svc.show_survey(deps, party.name, survey_id)

    @router.post("/surveys/{survey_id}/answer", status_code=201, tags=["conversations"])
    def answer(survey_id: str, body: SurveyAnswer, party: Party = Depends(caller)) -> dict[str, Any]:
        """Answer, choosing which parties may use the answer for which of the survey's purposes."""
        return survey_svc.answer(deps, party.name, survey_id, body.answers, [(c.party, c.purpose) for c in body.share])

    @router.put("/surveys/{survey_id}/sharing", tags=["conversations"])
    def sharing(survey_id: str, body: Sharing, party: Party = Depends(caller)) -> dict[str, Any]:
        """Replace who may use your answer; what you leave out is withdrawn from the next computation."""
        return survey_svc.share(deps, party.name, survey_id, [(c.party, c.purpose) for c in body.share])

    @router.get("/surveys/{survey_id}/results", tags=["conversations"])
    def results(survey_id: str, purpose: str = Query(..., min_length=1, max_length=200),
                party: Party = Depends(caller)) -> dict[str, Any]:
        """The asker's aggregates, from the people who allowed it `purpose` (runs governed queries)."""
        return survey_svc.results(deps, party.name, survey_id, purpose)

    @router.post("/threads", status_code=201, tags=["conversations"])
    def open_thread(body: NewThread, party: Party = Depends(caller)) -> dict[str, Any]:
        """Comment on or dispute one of your receipts (`ref`: its ledger index) or offers (`ref`: its id)."""
        return thread_svc.open_thread(deps, party.name, body.about, body.ref, body.kind, body.message)

    @router.get("/threads", tags=["conversations"])
    def threads(open_only: bool = False, party: Party = Depends(caller)) -> list[dict[str, Any]]:
        """Your threads, or those addressed to your organisation."""
        return thread_svc.list_threads(deps, party.name, open_only)

    @router.get("/threads/{thread_id}", tags=["conversations"])
    def thread(thread_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        return thread_svc.show_thread(deps, party.name, thread_id)

    @router.post("/threads/{thread_id}/messages", status_code=201, tags=["conversations"])
    def reply(thread_id: str, body: Message, party: Party = Depends(caller)) -> dict[str, Any]:
        return thread_svc.reply(deps, party.name, thread_id, body.message)

    @router.post("/threads/{thread_id}/close", tags=["conversations"])
    def close(thread_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        return thread_svc.close(deps, party.name, thread_id)

    return router
