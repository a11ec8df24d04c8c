"""Models: registered ONNX versions, alias history, promotion, rollback, approval and cards.

Promote, rollback and approve are offered to approvers and admins only; the
API enforces the roles, the page merely does not offer what would be refused.
Every move asks for a reason and a confirmation, and lands in the alias
history and the audit log.
"""

from __future__ import annotations

from typing import Any

import console_explain
import console_lib as lib
import console_views as views
import streamlit as st

from appliance.client import ApplianceClient

CHAMPION = "champion"
MODEL_COLUMNS = ["name", "latest_version", "aliases", "created_at"]
VERSION_COLUMNS = ["number", "status", "aliases", "parity", "warnings"]
VERSION_TAIL = ["flavor", "task", "dataset", "dataset_version", "run_id", "created_by",
                "created_at", "onnx_size", "onnx_sha256"]
HISTORY_COLUMNS = ["at", "alias", "action", "version", "previous_version", "forced", "actor",
                   "reason"]
SIGNATURE_COLUMNS = ["name", "type", "shape"]
EMPTY_HINT = (
    "No models yet: train one with `appliance train jobs/churn.yaml` (a successful run "
    "registers its ONNX export), or register an ONNX file built elsewhere: "
    "`curl -X POST -H 'Authorization: Bearer <token>' --data-binary @model.onnx "
    "<api>/api/v1/models/<name>/versions`."
)


def parity_text(version: dict[str, Any]) -> str:
    parity = version.get("parity")
    if not parity:
        return "not checked"
    return "passed" if parity.get("passed") else "failed"


def version_label(version: dict[str, Any]) -> str:
    aliases = ", ".join(version.get("aliases") or [])
    return f"v{version['number']} · {version['status']}" + (f" · {aliases}" if aliases else "")


# -- lists ------------------------------------------------------------------------


def pick_model(models: list[dict[str, Any]]) -> str:
    st.subheader("All models")
    df = views.frame(models, MODEL_COLUMNS)
    df["aliases"] = [", ".join(f"{a} → v{v}" for a, v in sorted((m.get("aliases") or {}).items()))
                     for m in models]
    views.table(df)
    name: str = st.selectbox("Model", [m["name"] for m in models], key="model")
    return name


def versions_table(versions: list[dict[str, Any]]) -> None:
    rows, metric_columns = views.with_metrics([{**v, "parity": parity_text(v)} for v in versions])
    df = views.frame(rows, VERSION_COLUMNS + metric_columns + VERSION_TAIL)
    df["aliases"] = [", ".join(v.get("aliases") or []) for v in versions]
    df["warnings"] = [len(v.get("warnings") or []) for v in versions]
    views.table(df, colour_by="status")


# -- alias history ----------------------------------------------------------------


def show_history(client: ApplianceClient, name: str, aliases: dict[str, int]) -> None:
    st.subheader("Alias history")
    if aliases:
        st.markdown(" · ".join(f"`{a}` → **v{v}**" for a, v in sorted(aliases.items())))
    else:
        st.info(f"{name} has no aliases yet: an approver promotes a version below "
                "(`champion` is the one served), or run "
                f"`appliance models promote {name} VERSION --alias champion`.")
    names = sorted(set(aliases) | {CHAMPION})
    alias: str = st.selectbox("Alias", names, index=names.index(CHAMPION),
                              key=f"history_alias_{name}")
    events = lib.fetch(lambda: client.get(f"/models/{name}/aliases/{alias}/history"),
                       what=f"the history of `{alias}`")
    if events is None:
        return
    if not events:
        st.caption(f"`{alias}` has never been set.")
        return
    views.alias_timeline_chart(events, alias)
    views.table(views.frame(events, HISTORY_COLUMNS), colour_by="action")


# -- promote, roll back, approve (approver and admin) ------------------------------


def checked(key: str) -> bool:
    return bool(st.session_state.get(key))


def text(key: str) -> str:
    return str(st.session_state.get(key) or "").strip()


def promote_form(client: ApplianceClient, name: str, versions: list[dict[str, Any]]) -> None:
    st.markdown("**Promote**: point an alias at a version")
    keys = {k: f"promote_{k}_{name}" for k in ("alias", "version", "reason", "force", "confirm")}
    labels = {v["number"]: version_label(v) for v in versions}
    st.text_input("Alias", value=CHAMPION, key=keys["alias"])
    number = st.selectbox("Version", list(labels), format_func=labels.__getitem__,
                          key=keys["version"])
    st.text_input("Reason", key=keys["reason"], placeholder="why this version (kept in the history)")
    st.checkbox("force (audited)", key=keys["force"],
                help="Skip the promotion gate for `champion`; the override is audited.")
    st.checkbox(f"I confirm moving the alias to v{number}", key=keys["confirm"])

    def promote() -> None:
        alias, force = text(keys["alias"]) or CHAMPION, checked(keys["force"])
        body = {"version": st.session_state[keys["version"]], "reason": text(keys["reason"]),
                "force": force}
        lib.attempt(lambda: client.put(f"/models/{name}/aliases/{alias}", json=body),
                    lambda out: f"Moved `{alias}` of {name} to v{out['version']}"
                    f"{' (forced)' if force else ''}; it was "
                    f"{'v' + str(out['previous_version']) if out.get('previous_version') else 'unset'}.")
        st.session_state[keys["confirm"]] = False

    st.button("Promote", key="promote", type="primary", on_click=promote,
              disabled=not checked(keys["confirm"]))


def rollback_form(client: ApplianceClient, name: str, aliases: dict[str, int]) -> None:
    st.markdown("**Roll back**: return an alias to its previous version")
    if not aliases:
        st.caption("No alias to roll back.")
        return
    keys = {k: f"rollback_{k}_{name}" for k in ("alias", "reason", "confirm")}
    names = sorted(aliases)
    alias = st.selectbox("Alias", names, index=names.index(CHAMPION) if CHAMPION in names else 0,
                         key=keys["alias"])
    history = lib.fetch(lambda: client.get(f"/models/{name}/aliases/{alias}/history")) or []
    back_to = history[0].get("previous_version") if history else None
    if back_to is None:
        st.caption(f"`{alias}` has no earlier version to go back to.")
        return
    st.text_input("Reason", key=keys["reason"], placeholder="why roll back (kept in the history)")
    st.checkbox(f"I confirm moving `{alias}` from v{aliases[alias]} back to v{back_to}",
                key=keys["confirm"])

    def rollback() -> None:
        body = {"reason": text(keys["reason"])}
        lib.attempt(lambda: client.post(f"/models/{name}/aliases/{alias}/rollback", json=body),
                    lambda out: f"Rolled `{alias}` of {name} back to v{out['version']} "
                    f"(from v{out['previous_version']}).")
        st.session_state[keys["confirm"]] = False

    st.button("Roll back", key="rollback", on_click=rollback, disabled=not checked(keys["confirm"]))


def approve_form(client: ApplianceClient, name: str, versions: list[dict[str, Any]]) -> None:
    st.markdown("**Approve**: a held version becomes `champion`")
    pending = [v["number"] for v in versions if v.get("status") == "pending_approval"]
    if not pending:
        st.caption("No version waits for approval.")
        return
    keys = {k: f"approve_{k}_{name}" for k in ("version", "reason", "confirm")}
    number = st.selectbox("Version waiting for approval", pending, format_func=lambda n: f"v{n}",
                          key=keys["version"])
    st.text_input("Reason", key=keys["reason"], placeholder="why approve (kept in the history)")
    st.checkbox(f"I confirm approving v{number} as champion", key=keys["confirm"])

    def approve() -> None:
        chosen, body = st.session_state[keys["version"]], {"reason": text(keys["reason"])}
        lib.attempt(lambda: client.post(f"/models/{name}/versions/{chosen}/approve", json=body),
                    lambda out: f"Approved {name} v{out['version']}: it is now `champion`.")
        st.session_state[keys["confirm"]] = False

    st.button("Approve", key="approve", type="primary", on_click=approve,
              disabled=not checked(keys["confirm"]))


def show_actions(client: ApplianceClient, name: str, aliases: dict[str, int],
                 versions: list[dict[str, Any]]) -> None:
    st.subheader("Promote, roll back, approve")
    if not lib.has_role("approver"):
        role = (lib.current_user() or {}).get("role")
        st.caption(f"Moving aliases and approving versions needs the approver or admin role; "
                   f"you are signed in as {role}.")
        return
    promote_column, rollback_column, approve_column = st.columns(3)
    with promote_column:
        promote_form(client, name, versions)
    with rollback_column:
        rollback_form(client, name, aliases)
    with approve_column:
        approve_form(client, name, versions)


# -- one version ----------------------------------------------------------------------


def pick_version(name: str, versions: list[dict[str, Any]]) -> dict[str, Any]:
    """Versions come newest first, so the newest is the default."""
    by_number = {v["number"]: v for v in versions}
    number = st.selectbox("Version", list(by_number),
                          format_func=lambda n: version_label(by_number[n]),
                          key=f"model_version_{name}")
    return by_number[number]


def show_card(client: ApplianceClient, name: str, number: int) -> None:
    path = f"/models/{name}/versions/{number}/card"
    markdown = lib.fetch(lambda: client.get(path, format="md"), what="the model card")
    if markdown is not None:
        with st.container(border=True):
            st.markdown(markdown)
    card = lib.fetch(lambda: client.get(path), what="the model card (JSON)")
    if card is not None:
        console_explain.show_importances(card)
        with st.expander("Model card (JSON)"):
            st.json(card)


def show_signature(version: dict[str, Any]) -> None:
    signature = version.get("signature") or {}
    for side in ("inputs", "outputs"):
        st.markdown(f"**{side.capitalize()}**")
        views.table(views.frame(signature.get(side) or [], SIGNATURE_COLUMNS))
    if version.get("parity"):
        st.markdown("**Parity check**")
        st.json(version["parity"])
    if version.get("gate"):
        st.markdown("**Promotion gate**")
        st.json(version["gate"])


def download_onnx(client: ApplianceClient, name: str, version: dict[str, Any]) -> None:
    number = version["number"]
    st.caption(f"{version.get('onnx_size')} bytes · sha256 `{version.get('onnx_sha256')}` "
               "(checked by the server before it sends the file)")
    st.download_button(
        "Download ONNX", key="download_onnx", file_name=f"{name}-v{number}.onnx",
        mime="application/octet-stream",
        data=lambda: lib.fetch_bytes(client, f"/models/{name}/versions/{number}/onnx"),
    )


def show_version(client: ApplianceClient, name: str, version: dict[str, Any]) -> None:
    views.training_warnings(version.get("warnings") or [],
                            f"when it trained v{version['number']}")
    tabs = st.tabs(["Model card", "Signature and checks", "Download"])
    with tabs[0]:
        show_card(client, name, version["number"])
    with tabs[1]:
        show_signature(version)
    with tabs[2]:
        download_onnx(client, name, version)


def main() -> None:
    client = lib.open_page("Models")
    models = lib.fetch(lambda: client.get("/models"), what="the list of models")
    if models is None:
        return
    if not models:
        st.info(EMPTY_HINT)
        return
    name = pick_model(models)
    model = lib.fetch(lambda: client.get(f"/models/{name}"), what=f"model {name}")
    if model is None:
        return
    versions, aliases = model.get("versions") or [], model.get("aliases") or {}
    st.subheader("Versions")
    if not versions:
        st.info(f"{name} has no versions yet.")
        return
    versions_table(versions)
    show_history(client, name, aliases)
    show_actions(client, name, aliases, versions)
    st.subheader("Version detail")
    show_version(client, name, pick_version(name, versions))


main()
