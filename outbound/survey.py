"""The satisfaction survey: asked once after a close, answered by a reply with a score.

The survey is an `sla_events` row (kind survey), so the tick sends it once through the gate of
automatic mail like every customer mail of the SLA clock. Its key uses the ticket's opening
time as the "deadline": the same for every close of the ticket, so a ticket closed, reopened
and closed again is asked once, never twice.

An answer is a message from the ticket's customer to the closed ticket after the survey went
out, threaded by the survey's Message-ID or the reference (ingest/thread_finder.py), whose
first non-empty line's first number is 1 to 5 ("5 - çok memnunum", "Puanım: 4", "4/5"). It is
recorded with the score and the rest as the comment, and the ticket stays closed, unless the
comment reports a problem (`reports_problem`: a question, "hâlâ"/"still", a negative verb such
as "gelmedi"/"çalışmıyor"/"didn't", "sorun"/"problem"...): then the score is kept and the message
goes on as an ordinary customer message, which reopens the ticket and tells its agents. Anything
without a score is an ordinary customer message too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.config_sla import SlaConfig
from domain.context import Context
from domain.history import record_incoming
from domain.message import ParsedMessage
from domain.turkish import fold
from storage.db import Database
from storage.models import SLA_SURVEY, JournalEntry, SlaEvent, Ticket

SURVEY_TARGET = "survey"
_FIRST_NUMBER = re.compile(r"\d+")
# Only a label may stand before the score ("Puanım: 2", "Score: 1"): "Sipariş 3 kere..." is prose.
_LABEL_BEFORE = re.compile(
    r"^\s*(?:(?:puan[ıi]m|puan|notum|not|oyum|oy|de[ğg]erlendirmem|de[ğg]erlendirme|"
    r"score|rating|my score)\s*[:=\-–]?\s*)?$",
    re.I,
)
# A number that counts something is not a score: "2 gündür", "3'te", "4 TL", "2.5", "5%".
_NOT_A_SCORE_AFTER = re.compile(
    r"^(?:[.,]\d|['’]|\s*(?:%|₺|x\b|g[üu]n|saat|dakika|dk\b|hafta|ay\b|ayd|y[ıi]l|sene|kez|"
    r"kere|defa|tl\b|lira|kişi|adet|tane|day|hour|min|week|month|year|time|euro|eur\b|usd|"
    r"dolar))",
    re.I,
)
# What may sit between the score and the comment: "5 - ", "4/5: ", "3) ", "5 puan, ".
_AFTER_SCORE = re.compile(
    r"^\s*(?:/\s*5|out of 5|üzerinden)?\s*(?:puan|points?)?[\s\-–—:.,;!)]*", re.I
)


def schedule_survey(session: Session, ticket: Ticket, sla: SlaConfig, now: datetime) -> None:
    """Owe the customer the survey, unless the ticket was ever asked (sent or still due)."""
    if not sla.survey or ticket.status != "closed":
        return
    asked = session.scalar(
        select(SlaEvent.id).where(SlaEvent.ticket_id == ticket.id, SlaEvent.kind == SLA_SURVEY)
    )
    if asked is None:
        session.add(
            SlaEvent(
                ticket_id=ticket.id,
                kind=SLA_SURVEY,
                target=SURVEY_TARGET,
                point=0,
                deadline=ticket.created_at,
                due_at=now + timedelta(hours=sla.survey_delay_hours),
            )
        )
        session.flush()


def parse_score(text: str) -> tuple[int, str] | None:
    """(score, comment) when the first non-empty line starts with a score from 1 to 5.

    Only a label may stand before the number, and a number that counts days, money or times is
    prose, not a score: a customer writing "2 gündür bekliyorum" after a survey is still owed an
    answer, and misreading it would file a complaint as a rating and close the matter."""
    lines = text.strip().splitlines()
    if not lines:
        return None
    first = lines[0]
    number = _FIRST_NUMBER.search(first)
    if number is None or not 1 <= int(number.group()) <= 5:
        return None
    if not _LABEL_BEFORE.match(first[: number.start()]):
        return None
    if _NOT_A_SCORE_AFTER.match(first[number.end() :]):
        return None
    # Words before the score are a label ("Puanım:"); what follows it is the comment.
    rest = _AFTER_SCORE.sub("", first[number.end() :], count=1)
    comment = "\n".join([rest.strip(), *lines[1:]]).strip()
    return int(number.group()), comment


# Over folded text (domain/turkish.py). Turkish negative verbs: -madı/-medi (gelmedi, olmadı,
# çözülmedi), -mıyor/-miyor/-muyor/-müyor (çalışmıyor), -mamış/-memiş, -mez/-maz (olmaz), and
# -amıyorum/-emiyorum (giremiyorum); words that say it is not over, in Turkish and English.
_PROBLEM = re.compile(
    r"\?|\b\w+(?:mad[i]|med[i]|m[iu]yor|mam[i]s|memis|[ae]m[iu]yor)\w*\b|"
    r"\b(?:hala|halen|hic|sorun|problem|hata|yardim|acil|neden|niye|nicin|degil|"
    r"still|not|never|nothing|didn|doesn|isn|wasn|haven|hasn|cannot|won|issue|help|why|yet|"
    r"again|tekrar|yine)\b"
)
# Said of a problem that is over: a remark, not a request.
_RESOLVED = re.compile(r"\b(?:no problem|not bad|sorun yok|sorunsuz|problem yok|hic sorun)\w*")


def reports_problem(comment: str) -> bool:
    """Does a survey comment say something is still wrong (and so is a request, not a remark)?
    "Çok hızlıydınız." is a remark; "Ama hâlâ sıfırlama maili gelmedi" is not."""
    return _PROBLEM.search(_RESOLVED.sub(" ", fold(comment))) is not None


@dataclass(frozen=True)
class SurveyAnswer:
    ticket: Ticket
    score: int
    comment: str

    @property
    def reopens(self) -> bool:
        return bool(self.comment) and reports_problem(self.comment)


def survey_answer(
    ctx: Context, message: ParsedMessage, ticket: Ticket | None
) -> SurveyAnswer | None:
    """The message answers the survey of `ticket` (the ticket threading found), or None."""
    if ticket is None or ticket.status != "closed" or message.sender.email != ticket.customer:
        return None
    surveyed = ctx.session.scalar(
        select(SlaEvent.id).where(
            SlaEvent.ticket_id == ticket.id,
            SlaEvent.kind == SLA_SURVEY,
            SlaEvent.outcome.like("sent%"),
        )
    )
    if surveyed is None:
        return None
    parsed = parse_score(message.text)
    return SurveyAnswer(ticket, *parsed) if parsed else None


def record_survey_answer(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, answer: SurveyAnswer
) -> str:
    """Kept on the ticket (a later answer replaces the score: the customer changed it) and,
    unless it `reopens` (then the pipeline records the message as a customer's), in the
    history with no reopening, no acknowledgement, no agent mail: a score is not a request."""
    if not answer.reopens:
        record_incoming(ctx, answer.ticket, entry, message, kind="customer")
    ticket = answer.ticket
    ticket.satisfaction_score = answer.score
    ticket.satisfaction_comment = answer.comment or None
    ticket.satisfaction_at = ctx.clock.now()
    ctx.session.flush()
    if answer.reopens:
        return f"survey answer: score {answer.score} recorded; its comment reports a problem"
    return f"survey answer: score {answer.score} recorded, the ticket stays closed"


def satisfaction(ticket: Ticket) -> dict[str, Any] | None:
    """The answer as `tickets show` gives it."""
    if ticket.satisfaction_score is None:
        return None
    at = ticket.satisfaction_at
    return {
        "score": ticket.satisfaction_score,
        "comment": ticket.satisfaction_comment,
        "at": at.isoformat() if at else None,
    }


def survey_report(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Average score and count of answers per queue and per agent (the assignee)."""
    result: dict[str, list[dict[str, Any]]] = {}
    with db.read() as session:
        for name, column in (("queue", Ticket.queue), ("agent", Ticket.assignee)):
            rows = session.execute(
                select(column, func.avg(Ticket.satisfaction_score), func.count(Ticket.id))
                .where(Ticket.satisfaction_score.is_not(None))
                .group_by(column)
                .order_by(column)
            )
            result[f"per_{name}"] = [
                {name: key or "-", "average": round(float(avg), 2), "count": int(count)}
                for key, avg, count in rows
            ]
    return result
