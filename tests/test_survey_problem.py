"""A survey answer that carries a new problem reopens the ticket and tells its agents (issue 15,
point 4); a score with a remark stays a rating. Over a table of answers, through the pipeline
on SQLite with a FixedClock (tests/test_sla_survey.py's desk)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.clock import FixedClock
from tests.test_sla import AGENT, ticket_of
from tests.test_sla_survey import answer, closed_and_surveyed, desk, outbox  # noqa: F401
from ticketd.state import State

ANSWERS = [
    # (the customer's reply, score, reopens)
    ("4\nAma hâlâ sıfırlama maili gelmedi", 4, True),
    ("4\nAMA HALA SIFIRLAMA MAILI GELMEDI", 4, True),
    ("3 - çekimim yine yatmadı", 3, True),
    ("2\nUygulama hâlâ çalışmıyor.", 2, True),
    ("5\nTeşekkürler. Peki bonusum ne zaman yüklenecek?", 5, True),
    ("1\nParamı hâlâ alamadım, neden?", 1, True),
    ("4/5 but I still cannot log in", 4, True),
    ("Score: 3. The refund has not arrived yet.", 3, True),
    ("2\nSame problem again since this morning", 2, True),
    ("5 - çok memnunum\nÇok hızlıydınız.", 5, False),
    ("5", 5, False),
    ("Puanım: 4, teşekkürler", 4, False),
    ("4\nSorun yok, hızlı çözüldü.", 4, False),
    ("Score: 3 out of 5, it took a while", 3, False),
    ("5 no problem, very fast", 5, False),
    ("5\nHarika hizmet, elinize sağlık", 5, False),
]


@pytest.mark.parametrize(("reply", "score", "reopens"), ANSWERS)
def test_a_survey_answer_with_a_problem_reopens_the_ticket(
    desk: State,  # noqa: F811
    clock: FixedClock,
    reply: str,
    score: int,
    reopens: bool,
) -> None:
    ref, survey_id = closed_and_surveyed(desk, clock)
    notified = len([m for m in outbox(desk, "notify") if m.recipient == AGENT])
    clock.advance(timedelta(hours=1))
    answer(desk, ref, survey_id, reply)
    ticket = ticket_of(desk, ref)
    assert ticket.satisfaction_score == score  # the score is kept either way
    assert ticket.status == ("open" if reopens else "closed")
    now = [m for m in outbox(desk, "notify") if m.recipient == AGENT]
    assert len(now) == notified + (1 if reopens else 0)
    if reopens:
        assert reply.splitlines()[-1].split()[-1] in now[-1].text  # the agent reads it
