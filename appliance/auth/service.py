"""Users, passwords, tokens and authentication.

Passwords are hashed with argon2 (argon2-cffi). Tokens are 256-bit random
secrets, so a fast sha256 digest is enough to store them; the plain secret is
shown once and never stored. Sessions (from ``POST /auth/token``) and API
tokens are the same kind of row, with a different ``kind`` and lifetime.

A user's role is read from the user row on each check (cached for at most
30 s, and the cache is cleared on every change), so a role change applies
to their API tokens at the next request; a change of password, role or a
disable also ends their sessions. In scale-out every such change is also
announced on the change feed (``appliance.changes``): every host clears its
cache within the feed's bound, and a host whose feed is not fresh (``fresh``
false: its poller is stuck) checks every token in the database, so a token
revoked through one host is refused by all within the bound. The last enabled admin cannot be demoted
or disabled: nobody could manage users any more.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.audit import Auditor
from appliance.auth.login import LoginGuard, LoginLimits
from appliance.domain.auth import AccessToken, NewToken, Token, User
from appliance.domain.changes import Topic
from appliance.domain.names import check_username
from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from appliance.store import changes
from appliance.store import users as q
from appliance.store.db import Store
from appliance.store.tables import TokenRow, UserRow

log = logging.getLogger(__name__)

TOKEN_PREFIX = "apl_"  # noqa: S105 - a prefix, not a secret
_CACHE_SECONDS = 30.0
# A token's last_used_at is written when authentication reads the token from the store
# (a cache miss) and the stored time is older than this: at most one write per token
# per minute, never one per request.
_TOUCH_SECONDS = 60.0
_MIN_PASSWORD = 8
_MAX_PASSWORD = 1024  # argon2 hashes any length; a megabyte "password" is only a cost
MAX_TOKEN_DAYS = 3650  # an API token lives (0, 10 years]; no expiry is spelled None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


# argon2id (argon2-cffi's default parameters) of 32 random bytes that were thrown away.
_DUMMY_HASH = ("$argon2id$v=19$m=65536,t=3,p=4$svV6aJPtkXlahCkufVz90A$"
               "gl1NeNmJVuoB8q+wmlU1bgEFigF8dPQHfqwPo0Xr8Do")


class AuthService:
    def __init__(self, store: Store, auditor: Auditor, *, session_ttl_hours: float,
                 limits: LoginLimits | None = None,
                 fresh: Callable[[], bool] | None = None) -> None:
        self.store = store
        self.auditor = auditor
        self.session_ttl = dt.timedelta(hours=session_ttl_hours)
        self.guard = LoginGuard(store, auditor, limits or LoginLimits())
        self._hasher = PasswordHasher()
        # token hash -> (principal, valid-until monotonic); cleared on any user/token change
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._degraded_sessions: dict[str, tuple[Principal, dt.datetime]] = {}
        self._cache_lock = threading.Lock()
        self._generation = 0  # bumped by every clear: a check read before it is not cached
        # scale-out: whether the change feed has read every other host's changes up to its
        # bound ago; when not, the cache is not trusted (None: one host, always fresh)
        self.fresh = fresh
        # a wrong username costs as much as a wrong password: verify against a hash of
        # the hasher's parameters whose password nobody knows (a constant, so start-up
        # does not spend half a second hashing one)
        self._dummy_hash = _DUMMY_HASH

    # -- bootstrap ------------------------------------------------------------

    def ensure_admin(self, admin_password: str | None) -> None:
        """Create user ``admin`` from ``APPLIANCE_ADMIN_PASSWORD`` when there are no users."""
        if admin_password and not self._has_users():
            try:
                self.add_user("admin", admin_password, Role.admin, by="system")
            except Conflict:  # another host starting at the same moment made it first
                if not self._has_users():
                    raise

    def mint_bootstrap_token(self) -> str | None:
        """With no users at all, return a fresh one-time token to print; else None.

        No default password and no open signup: the serve process mints an
        admin-scoped token valid for 24 hours at start (revoking any earlier
        one), and it is revoked as soon as the first user exists.
        """
        if self._has_users():
            return None
        secret = new_secret()
        with self.store.write() as s:
            now = dt.datetime.now(dt.UTC)
            q.revoke_tokens_of_kind(s, "bootstrap", now)
            changes.note(s, Topic.auth, "bootstrap")
            row = q.add_token(
                s,
                TokenRow(
                    name="bootstrap", kind="bootstrap", token_hash=hash_token(secret),
                    role=Role.admin.value, expires_at=now + dt.timedelta(hours=24),
                ),
            )
            self.auditor.record(s, "system", "auth.bootstrap_token", f"token:{row.id}")
        return secret

    def _has_users(self) -> bool:
        with self.store.read() as s:
            return q.count_users(s) > 0

    # -- users ----------------------------------------------------------------

    def add_user(
        self, username: str, password: str, role: Role | str, *, by: Principal | str
    ) -> User:
        check_username(username)
        role = _role(role)
        _check_password(password)
        with self.store.write() as s:
            if q.get_user(s, username) is not None:
                raise Conflict(f"user {username!r} already exists")
            row = q.add_user(
                s, UserRow(username=username, password_hash=self._hasher.hash(password), role=role.value)
            )
            user = user_of(row)
            self.auditor.record(s, by, "user.create", f"user:{username}",
                                after=user.model_dump(mode="json"))
            q.revoke_tokens_of_kind(s, "bootstrap", dt.datetime.now(dt.UTC))
            changes.note(s, Topic.auth, username)
        self._clear_cache()
        return user

    def update_user(
        self,
        username: str,
        *,
        by: Principal,
        role: Role | str | None = None,
        password: str | None = None,
        disabled: bool | None = None,
    ) -> User:
        new_role = _role(role) if role is not None else None
        if password is not None:
            _check_password(password)
        hashed = self._hasher.hash(password) if password is not None else None  # before the lock
        with self.store.write() as s:
            row = q.get_user(s, username)
            if row is None:
                raise NotFound(f"user {username!r} does not exist")
            before = user_of(row).model_dump(mode="json")
            if disabled and username == by.username:
                raise Conflict("you cannot disable yourself")
            role_changes = new_role is not None and new_role.value != row.role
            disables = bool(disabled) and not row.disabled
            if row.role == Role.admin.value and not row.disabled and (
                    disables or (role_changes and new_role is not Role.admin)) \
                    and q.count_enabled_admins(s) <= 1:
                raise Conflict(
                    f"{username!r} is the last enabled admin: make another user admin first, "
                    "or nobody could manage users any more",
                    detail={"username": username, "reason": "last_admin"})
            if new_role is not None:
                row.role = new_role.value
            if hashed is not None:
                row.password_hash = hashed
            if disabled is not None:
                row.disabled = disabled
            s.add(row)
            ended = 0
            if hashed is not None or role_changes or disables:
                # whoever holds an old session no longer holds this user's rights; the
                # caller's own session survives a change they make to themselves
                own = by.token_id if by.username == username and by.token_id else None
                ended = q.revoke_sessions_of(s, row.id, dt.datetime.now(dt.UTC),
                                             keep=uuid.UUID(own) if own else None)
            after = user_of(row)
            changed = {"password_changed": password is not None, "sessions_ended": ended}
            self.auditor.record(s, by, "user.update", f"user:{username}", before=before,
                                after={**after.model_dump(mode="json"), **changed})
            changes.note(s, Topic.auth, username)
        self._clear_cache()
        return after

    def list_users(self) -> list[User]:
        with self.store.read() as s:
            return [user_of(u) for u in q.list_users(s)]

    # -- tokens ---------------------------------------------------------------

    def login(self, username: str, password: str, *, client: str | None = None) -> AccessToken:
        """A session for a right password; throttled and audited (see ``auth.login``)."""
        user = self._check_password_of(username, password, client)
        secret = new_secret()
        expires = dt.datetime.now(dt.UTC) + self.session_ttl
        if self.store.degraded:
            # A read-only store cannot record a session: keep it in memory so people
            # can still log in and read what happened while the operator repairs it.
            principal = Principal(user.username, Role(user.role), None, "session")
            with self._cache_lock:
                self._degraded_sessions[hash_token(secret)] = (principal, expires)
        else:
            with self.store.write() as s:
                row = q.add_token(
                    s,
                    TokenRow(user_id=user.id, name="session", kind="session",
                             token_hash=hash_token(secret), expires_at=expires),
                )
                self.auditor.record(s, user.username, "auth.login", f"token:{row.id}",
                                    after={"kind": "session", "expires_at": expires.isoformat(),
                                           "client": client})
        return AccessToken(access_token=secret, expires_at=expires.isoformat(),
                           username=user.username, role=Role(user.role))

    def authenticate_password(self, username: str, password: str, *,
                              client: str | None = None) -> Principal:
        """Who sends HTTP basic credentials (the MLflow client's username and password):
        the login check and its throttling, without a session; a right pair is
        remembered for as long as a token check is."""
        digest = hash_token(f"basic\x00{username}\x00{password}")
        with self._cache_lock:
            hit = self._cache.get(digest)
            generation = self._generation
        if hit and hit[1] > time.monotonic() and self._trusted():
            return hit[0]
        user = self._check_password_of(username, password, client)
        principal = Principal(user.username, Role(user.role), None, "password")
        self._remember(digest, principal, _CACHE_SECONDS, generation)
        return principal

    def _check_password_of(self, username: str, password: str, client: str | None) -> UserRow:
        if not isinstance(username, str) or not isinstance(password, str):
            raise Unauthenticated("wrong username or password")
        keys = self.guard.begin(username, client)
        with self.store.read() as s:
            user = q.get_user(s, username)
        hashed = user.password_hash if user and user.password_hash else self._dummy_hash
        try:
            right = self._hasher.verify(hashed, password) and user is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            right = False
        if user is None or not right or user.disabled:
            reason = ("unknown user" if user is None else
                      "wrong password" if not right else "user disabled")
            self.guard.failed(username, client, reason)
            raise Unauthenticated("wrong username or password")
        self.guard.succeeded(keys)
        return user

    def create_token(
        self, username: str, name: str, *, by: Principal | str, expires_days: float | None = None
    ) -> NewToken:
        if not name or len(name) > 64:
            raise InvalidInput("a token needs a name of 1-64 characters")
        check_expires_days(expires_days)
        secret = new_secret()
        expires = (
            dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_days)
            if expires_days is not None else None
        )
        with self.store.write() as s:
            user = q.get_user(s, username)
            if user is None:
                raise NotFound(f"user {username!r} does not exist")
            row = q.add_token(
                s,
                TokenRow(user_id=user.id, name=name, kind="api",
                         token_hash=hash_token(secret), expires_at=expires),
            )
            out = token_of(row, username)
            self.auditor.record(s, by, "token.create", f"token:{row.id}",
                                after=out.model_dump(mode="json"))
        return NewToken(**dict(out), token=secret)

    def list_tokens(self) -> list[Token]:
        with self.store.read() as s:
            names: dict[uuid.UUID | None, str] = {u.id: u.username for u in q.list_users(s)}
            return [token_of(t, names.get(t.user_id)) for t in q.list_tokens(s)]

    def list_sessions(self) -> list[Token]:
        """Live login sessions (not revoked, not expired), newest first."""
        with self.store.read() as s:
            names: dict[uuid.UUID | None, str] = {u.id: u.username for u in q.list_users(s)}
            return [token_of(t, names.get(t.user_id))
                    for t in q.active_sessions(s, dt.datetime.now(dt.UTC))]

    def revoke_token(self, token_id: str, *, by: Principal,
                     kind: str | None = None) -> Token:
        """Revoke a token or session by id (``kind`` narrows which: a session route)."""
        what = "session" if kind == "session" else "token"
        try:
            tid = uuid.UUID(token_id)
        except ValueError:
            raise NotFound(f"{what} {token_id!r} does not exist") from None
        with self.store.write() as s:
            row = q.get_token(s, tid)
            if row is None or (kind is not None and row.kind != kind):
                raise NotFound(f"{what} {token_id!r} does not exist")
            user = q.get_user_by_id(s, row.user_id) if row.user_id else None
            before = token_of(row, user.username if user else None)
            if row.revoked_at is None:
                row.revoked_at = dt.datetime.now(dt.UTC)
                s.add(row)
            after = token_of(row, user.username if user else None)
            self.auditor.record(s, by, "token.revoke", f"token:{row.id}",
                                before=before.model_dump(mode="json"),
                                after=after.model_dump(mode="json"))
            changes.note(s, Topic.auth, f"token:{row.id}")  # every host drops its checks
        self._clear_cache()
        return after

    # -- authentication ---------------------------------------------------------

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated("missing bearer token")
        digest = hash_token(token)
        now_mono = time.monotonic()
        now = dt.datetime.now(dt.UTC)
        with self._cache_lock:
            hit = self._cache.get(digest)
            in_memory = self._degraded_sessions.get(digest)
            generation = self._generation
        if hit and hit[1] > now_mono and self._trusted():
            return hit[0]
        if in_memory and in_memory[1] > now:
            return in_memory[0]
        with self.store.read() as s:
            row = q.get_token_by_hash(s, digest)
            if row is None or row.revoked_at is not None:
                raise Unauthenticated("invalid or revoked token")
            if row.expires_at is not None and row.expires_at <= now:
                raise Unauthenticated("token expired")
            if row.kind == "bootstrap":
                principal = Principal("bootstrap", Role(row.role or "viewer"), str(row.id), row.kind)
            else:
                user = q.get_user_by_id(s, row.user_id) if row.user_id else None
                if user is None or user.disabled:
                    raise Unauthenticated("the token's user is disabled or gone")
                principal = Principal(user.username, Role(user.role), str(row.id), row.kind)
        self._touch(row.id, row.last_used_at, now)
        valid_for = _CACHE_SECONDS
        if row.expires_at is not None:
            valid_for = min(valid_for, (row.expires_at - now).total_seconds())
        self._remember(digest, principal, valid_for, generation, now_mono)
        return principal

    def _touch(self, token_id: uuid.UUID, last: dt.datetime | None, now: dt.datetime) -> None:
        """Keep ``last_used_at`` to the minute; a store that cannot write now (read-only,
        locked, degraded) never fails an authentication over it."""
        if last is not None:
            if last.tzinfo is None:
                last = last.replace(tzinfo=dt.UTC)
            if (now - last).total_seconds() < _TOUCH_SECONDS:
                return
        try:
            with self.store.write() as s:
                q.touch_token(s, token_id, now)
        except Exception as exc:  # bookkeeping: the request goes on whatever the store says
            log.debug("could not record the use of token %s: %s", token_id, exc)

    def _trusted(self) -> bool:
        return self.fresh is None or self.fresh()

    def _remember(self, digest: str, principal: Principal, seconds: float, generation: int,
                  now_mono: float | None = None) -> None:
        """Cache a check, unless the cache was cleared since it read the store (a change
        that landed meanwhile must not be papered over by what was read before it)."""
        until = (time.monotonic() if now_mono is None else now_mono) + seconds
        with self._cache_lock:
            if self._generation == generation:
                self._cache[digest] = (principal, until)

    def _clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()
            self._generation += 1

    def forget(self, _key: str = "") -> None:
        """Drop every cached check: another host changed a user or a token (the change
        feed). The next request of each token reads the store."""
        self._clear_cache()


def require(principal: Principal, role: Role) -> None:
    if not principal.role.allows(role):
        raise PermissionDenied(
            f"this needs the {role.value} role; {principal.username} is {principal.role.value}",
            detail={"needed": role.value, "have": principal.role.value},
        )


def user_of(u: UserRow) -> User:
    return User(username=u.username, role=Role(u.role), created_at=u.created_at.isoformat(),
                disabled=u.disabled)


def token_of(t: TokenRow, username: str | None) -> Token:
    """A token or session as users see it: never the secret nor its hash."""

    def iso(v: dt.datetime | None) -> str | None:
        return v.isoformat() if v else None

    return Token(id=str(t.id), username=username, name=t.name, kind=t.kind,
                 created_at=iso(t.created_at), expires_at=iso(t.expires_at),
                 revoked_at=iso(t.revoked_at), last_used_at=iso(t.last_used_at))


def check_expires_days(days: float | None) -> None:
    """An API token's lifetime: None (never expires) or more than 0 and at most 3650 days."""
    if days is None:
        return
    if isinstance(days, bool) or not isinstance(days, int | float) or not math.isfinite(days) \
            or not 0 < days <= MAX_TOKEN_DAYS:
        raise InvalidInput(
            f"expires_days must be more than 0 and at most {MAX_TOKEN_DAYS}, or left out for "
            f"a token that never expires (got {days!r})", detail={"field": "expires_days"})


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}: one of {', '.join(r.value for r in Role)}"
        ) from None


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not _MIN_PASSWORD <= len(password) <= _MAX_PASSWORD:
        raise InvalidInput(f"a password needs {_MIN_PASSWORD} to {_MAX_PASSWORD} characters")
