"""In-memory WebSessions for unit tests only; the contract suite holds it to Redis's behaviour."""
from __future__ import annotations

import threading
import time
from typing import Optional

from reelhouse.ports.web_sessions import WebSession, WebSessions, new_session_token, token_key


class InMemoryWebSessions(WebSessions):
    engine = "memory"

    def __init__(self, clock=time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[WebSession, float]] = {}

    def create(self, account_id: str, ttl_s: int) -> str:
        token = new_session_token()
        with self._lock:
            now = self._clock()
            self._sessions[token_key(token)] = (WebSession(account_id, now), now + ttl_s)
        return token

    def get(self, token: str) -> Optional[WebSession]:
        with self._lock:
            found = self._sessions.get(token_key(token or ""))
            return found[0] if found and found[1] > self._clock() else None

    def revoke(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token_key(token or ""), None)

    def revoke_all(self, account_id: str) -> int:
        with self._lock:
            mine = [key for key, (session, until) in self._sessions.items() if session.account_id == account_id]
            for key in mine:
                del self._sessions[key]
            return len(mine)
