"""Session, login and error plumbing shared by every console page.

The console is a pure HTTP client of the API (DESIGN.md §2): everything it
shows comes through :class:`appliance.client.ApplianceClient`. This module
keeps that client and its token in ``st.session_state``, draws the login form
and the sidebar, and turns API errors into readable messages (never a
traceback).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from appliance.client import CONNECTION_REFUSED, TIMEOUT, ApplianceClient
from appliance.errors import RemoteError, Unauthenticated

T = TypeVar("T")

DEFAULT_API_URL = "http://127.0.0.1:8000"
ROLES = ("viewer", "operator", "approver", "admin")  # ordered, as in the API reference

# st.session_state keys
CLIENT = "appliance_client"
USER = "appliance_user"  # {"username": ..., "role": ...}
NOTICES = "appliance_notices"  # [(kind, message)] shown once, on the next run


def api_url() -> str:
    """The API base URL, from ``APPLIANCE_API_URL``."""
    return os.environ.get("APPLIANCE_API_URL", "").strip() or DEFAULT_API_URL


def open_page(title: str) -> ApplianceClient:
    """Configure the page, draw the sidebar and return a logged-in client.

    Stops the script with the login form when nobody is logged in.
    """
    st.set_page_config(page_title="Appliance", layout="wide")
    client = _client()
    if current_user() is None:
        st.title(title)
        _show_notices()
        _login_form(client)
        st.stop()
    _sidebar()
    st.title(title)
    _show_notices()
    return client


def current_user() -> dict[str, str] | None:
    user: dict[str, str] | None = st.session_state.get(USER)
    return user


def has_role(needed: str) -> bool:
    """Whether the logged-in user's role is ``needed`` or above (to hide buttons only).

    The API enforces roles; the console merely avoids offering what would be refused.
    """
    user = current_user()
    if user is None or user.get("role") not in ROLES:
        return False
    return ROLES.index(user["role"]) >= ROLES.index(needed)


def logout(notice: str | None = None) -> None:
    client: ApplianceClient | None = st.session_state.pop(CLIENT, None)
    if client is not None:
        client.close()
    st.session_state.pop(USER, None)
    if notice:
        notify("warning", notice)


def notify(kind: str, message: str) -> None:
    """Queue a message (``success``/``info``/``warning``/``error``/``toast``) for the next run.

    Used by button callbacks, which run before the page is drawn again.
    """
    st.session_state.setdefault(NOTICES, []).append((kind, message))


def fetch(action: Callable[[], T], *, forbidden: str | None = None,
          what: str | None = None) -> T | None:
    """Run one API call; on an error show it and return ``None``.

    ``forbidden`` replaces the generic text shown when the role is too small
    (403); ``what`` names what failed to load ("the model card"), so the
    message says which part of the page is missing and why. An expired or
    revoked token logs the user out and shows the login form.
    """
    try:
        return action()
    except Unauthenticated:
        logout("Your session has expired or was revoked. Please log in again.")
        st.rerun()
    except RemoteError as exc:
        show_error(exc, forbidden=forbidden, what=what)
    return None


def attempt(action: Callable[[], T], success: Callable[[T], str], *,
            notice: str = "success") -> None:
    """Run a mutating API call from a button callback and queue the outcome.

    ``success`` turns the API's answer into the message shown on the next run,
    as a ``notice`` (``"toast"`` shows it as a toast).
    """
    try:
        answer = action()
    except Unauthenticated:
        logout("Your session has expired or was revoked. Please log in again.")
    except RemoteError as exc:
        notify("error", error_text(exc))
    else:
        notify(notice, success(answer))


def fetch_bytes(client: ApplianceClient, path: str) -> bytes:
    """GET a binary answer (an ONNX file, a run artifact) as exact bytes.

    ``ApplianceClient.get`` decodes every non-JSON answer as text, which would
    corrupt a binary file; ``download`` returns the raw bytes, with errors
    raised as the same :class:`RemoteError` / :class:`Unauthenticated`.
    """
    return client.download(path)


def show_error(exc: RemoteError, *, forbidden: str | None = None, what: str | None = None) -> None:
    if exc.status == 403:
        st.info(forbidden or f"Your role cannot see this. {exc.message}")
    elif what:
        st.error(f"{what[:1].upper()}{what[1:]} could not be loaded: {error_text(exc)}")
    else:
        st.error(error_text(exc))


def error_text(exc: RemoteError) -> str:
    """What went wrong, as it happened: only a refused connection is called an outage.

    A timeout, a dropped connection and a server error each say so; a 4xx
    carries the API's own message.
    """
    if exc.status == 0:
        if exc.remote_kind == TIMEOUT:
            return (f"The request timed out: the API at {api_url()} is up but did not answer "
                    "in time (it may be busy, e.g. training). Try again in a moment.")
        if exc.remote_kind == CONNECTION_REFUSED:
            return (f"The appliance API is not reachable at {api_url()}. "
                    "Is `appliance serve` running?")
        return f"The connection to the API broke before it answered ({exc.message}). Try again."
    if exc.status >= 500:
        return f"The API failed on this request (HTTP {exc.status}): {exc.message}"
    return exc.message


# -- internals ------------------------------------------------------------------


def _client() -> ApplianceClient:
    client: ApplianceClient | None = st.session_state.get(CLIENT)
    if client is None or client.base_url != api_url().rstrip("/"):
        client = ApplianceClient(api_url())
        st.session_state[CLIENT] = client
        st.session_state.pop(USER, None)
    return client


def _login_form(client: ApplianceClient) -> None:
    with st.form("login"):
        st.subheader("Log in")
        username = st.text_input("Username", key="login_username")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", key="login_submit")
    if submitted:
        _log_in(client, username.strip(), password)


def _log_in(client: ApplianceClient, username: str, password: str) -> None:
    if not username or not password:
        st.error("Enter a username and a password.")
        return
    try:
        answer = client.login(username, password)
        role = answer.get("role") or client.me()["role"]
    except Unauthenticated as exc:
        st.error(f"Login failed: {exc.message}")
        return
    except RemoteError as exc:
        st.error(f"Login failed: {error_text(exc)}")
        return
    st.session_state[USER] = {"username": answer.get("username", username), "role": role}
    st.rerun()


def _sidebar() -> None:
    user = current_user() or {}
    with st.sidebar:
        st.markdown(f"Signed in as **{user.get('username')}**  \nrole: `{user.get('role')}`")
        st.button("Log out", key="logout", on_click=logout)
        st.caption(f"API: {api_url()}")


def _show_notices() -> None:
    for kind, message in st.session_state.pop(NOTICES, []):
        getattr(st, kind)(message)
