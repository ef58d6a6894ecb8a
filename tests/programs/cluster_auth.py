"""The matchmaker's authentication hook in the tests: ``--auth tests.programs.cluster_auth:check``.

No ``Authorization`` header is a 401; a ticket other than ``let-me-in`` (in the options, or in
an ``X-Ticket`` header) is a 403.
"""

from __future__ import annotations

from pygase_core.cluster.matchmaker import MatchmakeRefused, MatchmakeRequest


async def check(request: MatchmakeRequest) -> None:
    ticket = request.options.get("ticket") or request.headers.get("X-Ticket")
    if "Authorization" not in request.headers and ticket is None:
        raise MatchmakeRefused("sign in first", status=401)
    if ticket != "let-me-in":
        raise MatchmakeRefused("that ticket is not valid here", status=403)
