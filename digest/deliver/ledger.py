"""Operator tools for the delivery ledger: the rows a stopped process left ``sending``.

Delivery is at most once (``digest.deliver.service``): a row claimed as ``sending`` whose transport call
never returned is not resent by itself, because the SMTP server or Slack may already hold the message.
Only an operator who has checked (mail log, the Slack channel) can say it was lost; ``release_claim``
is their tool: it removes the claim and its papers, so the next ``digest send`` for that day sends again.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from digest.deliver.service import stuck_claims
from digest.models import Delivery

__all__ = ["NotStuck", "release_claim", "stuck_claims"]


class NotStuck(Exception):
    """The ledger row does not exist or is not a stuck ``sending`` claim; the message says which."""


def release_claim(session: Session, delivery_id: int) -> Delivery:
    """Delete one stuck claim (and, by cascade, its papers) so that day's digest can be sent again."""
    row = session.get(Delivery, delivery_id)
    if row is None:
        raise NotStuck(f"no delivery with id {delivery_id}")
    if row.status != "sending":
        raise NotStuck(
            f"delivery {delivery_id} is {row.status!r}, not a stuck 'sending' claim; left as it is"
        )
    session.delete(row)
    session.flush()
    return row
