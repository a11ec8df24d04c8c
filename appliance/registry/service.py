"""Registered models and their ONNX versions; aliases moved by append-only events.

Every alias move is an event (who, when, why, forced or not); the current
version of an alias is the replay of its events, and a rollback is one more
event pointing back to the version before. ``champion`` moves only through
the promotion gate (the candidate beat the champion on the job's metric, on
the same holdout, by ``min_delta``) unless an approver forces it.
"""

from __future__ import annotations

import uuid
from typing import Any

from appliance.artifacts import ArtifactStore
from appliance.audit import Auditor
from appliance.domain.cards import CardEdge, ModelCard
from appliance.domain.changes import Topic
from appliance.domain.events import AliasMoved
from appliance.domain.lineage import alias_node, artifact_node, model_node, run_node, version_node
from appliance.domain.names import check_dataset_name
from appliance.domain.outliers import OutlierDetector
from appliance.domain.principal import Principal
from appliance.domain.privacy import ErasureNote
from appliance.domain.registry import (
    CHAMPION,
    AliasChange,
    AliasEvent,
    AliasPointer,
    Gate,
    Model,
    ModelDetail,
    ModelVersion,
    ModelVersionRef,
    VersionStatus,
    check_alias,
)
from appliance.errors import Conflict, InvalidInput, NotFound, TooLarge
from appliance.events import EventBus
from appliance.registry.cards import build_card, render_markdown
from appliance.store import changes
from appliance.store import erasures as eq
from appliance.store import lineage as lq
from appliance.store import registry as q
from appliance.store.db import Store
from appliance.store.tables import AliasEventRow, ModelVersionRow, RegisteredModelRow
from appliance.train.child.signature import readable

MAX_ONNX_BYTES = 1024 * 1024 * 1024


class RegistryService:
    def __init__(self, store: Store, auditor: Auditor, artifacts: ArtifactStore, *,
                 events: EventBus) -> None:
        self.store = store
        self.auditor = auditor
        self.artifacts = artifacts
        self.events = events  # AliasMoved after any alias move commits (serving swaps sessions)

    # -- registering ---------------------------------------------------------------

    def register(
        self,
        *,
        model: str,
        onnx_bytes: bytes,
        flavor: str,
        by: Principal | str,
        task: str | None = None,
        run_id: uuid.UUID | None = None,
        signature: dict[str, Any] | None = None,
        parity: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        fairness: dict[str, Any] | None = None,
        dataset: str | None = None,
        dataset_version: int | None = None,
        facts: dict[str, Any] | None = None,
        status: VersionStatus = VersionStatus.ready,
        checked: Any = None,
        outlier_onnx: bytes | None = None,
    ) -> ModelVersion:
        """Store the ONNX file (content-addressed) and record a new version.

        ``checked`` is the parsed model when the caller has already checked these bytes.
        ``outlier_onnx`` is the version's outlier detector (its facts in ``facts["outliers"]``).
        """
        from appliance.train.child.export import check_onnx_bytes, signature_of

        check_dataset_name(model)
        # refuses anything that is not one ONNX file
        proto = checked if checked is not None else check_onnx_bytes(onnx_bytes)
        signature = signature or signature_of(proto)
        art = self.artifacts.put_bytes(onnx_bytes)
        detector = None
        if outlier_onnx is not None:
            check_onnx_bytes(outlier_onnx)
            detector = self.artifacts.put_bytes(outlier_onnx)
        actor = by.actor if isinstance(by, Principal) else by
        with self.store.write() as s:
            m = q.get_or_create_model(s, model)
            number = q.next_version_number(s, m.id)
            row = q.add_version(s, ModelVersionRow(
                model_id=m.id, number=number, status=status.value, run_id=run_id, flavor=flavor,
                task=task, onnx_sha256=art.sha256, onnx_size=art.size, signature=signature,
                parity=parity, metrics=metrics, fairness=fairness, dataset=dataset,
                dataset_version=dataset_version, card=facts or {}, created_by=actor,
                outlier_sha256=detector.sha256 if detector else None,
            ))
            node = model_node(model, number)
            if run_id is not None:
                lq.add_edge(s, src=run_node(run_id), dst=node, relation="registered_as")
            lq.add_edge(s, src=artifact_node(art.sha256), dst=node, relation="onnx_of")
            if detector is not None:
                lq.add_edge(s, src=artifact_node(detector.sha256), dst=node,
                            relation="outliers_of")
            self.auditor.record(s, by, "model.version.create", node,
                                after={"onnx_sha256": art.sha256, "status": row.status,
                                       "run_id": str(run_id) if run_id else None})
        return _version_public(model, row, {})

    def register_upload(self, name: str, data: bytes, *, by: Principal,
                        features: list[str] | None = None) -> ModelVersion:
        """Register an ONNX file built elsewhere, refused with reasons unless serving can
        feed it (see ``appliance.train.child.signature``). ``features`` names the values of a
        model's one vector input, so records and CSV bodies can be keyed by them."""
        from appliance.train.child.export import check_onnx_bytes, signature_of
        from appliance.train.child.signature import check_features, check_servable

        if len(data) > MAX_ONNX_BYTES:
            raise TooLarge("an ONNX model is at most 1 GiB")
        check_dataset_name(name)
        proto = check_onnx_bytes(data)
        check_servable(proto)
        names = check_features(proto, features)
        _check_loads(data)
        signature = signature_of(proto)
        if names is not None:
            signature["inputs"][0]["features"] = names
        return self.register(model=name, onnx_bytes=data, flavor="onnx", by=by,
                             signature=signature, checked=proto,
                             facts={"purpose": "registered as an ONNX file"})

    # -- reading -------------------------------------------------------------------

    def list_models(self) -> list[Model]:
        with self.store.read() as s:
            return [_model_public(m, q.list_versions(s, m.id), _replay(q.alias_events(s, m.id)))
                    for m in q.list_models(s)]

    def model(self, name: str) -> Model:
        """The model without its versions; NotFound for an unknown model."""
        with self.store.read() as s:
            m = self._model(s, name)
            return _model_public(m, q.list_versions(s, m.id), _replay(q.alias_events(s, m.id)))

    def show_model(self, name: str) -> ModelDetail:
        with self.store.read() as s:
            m = self._model(s, name)
            aliases = _replay(q.alias_events(s, m.id))
            versions = q.list_versions(s, m.id)
            return ModelDetail(**dict(_model_public(m, versions, aliases)),
                               versions=[_version_public(name, v, aliases) for v in versions])

    def versions(self, name: str) -> list[ModelVersion]:
        """The model's versions, newest first."""
        return self.show_model(name).versions

    def version(self, name: str, number: int) -> ModelVersion:
        with self.store.read() as s:
            m = self._model(s, name)
            v = self._version(s, m, number)
            return _version_public(name, v, _replay(q.alias_events(s, m.id)))

    def onnx_bytes(self, name: str, number: int) -> bytes:
        """The version's ONNX file, refused if its bytes no longer match the stored sha256."""
        sha = self.version(name, number).onnx_sha256
        return self.artifacts.read_bytes(sha)

    def outlier_onnx(self, name: str, number: int) -> bytes | None:
        """The version's outlier detector (sha256 checked), or None when it has none."""
        detector = self.version(name, number).outliers
        return None if detector is None else self.artifacts.read_bytes(detector.sha256)

    def version_of_run(self, run_id: uuid.UUID | str) -> ModelVersionRef | None:
        """Which model version a run registered, if any (a run registers at most one)."""
        hit = self._run_version(run_id)
        return ModelVersionRef(model=hit[0], version=hit[1]) if hit else None

    def version_for_run(self, run_id: uuid.UUID | str) -> ModelVersion | None:
        """The model version a run registered, or None (an unknown or malformed id too)."""
        hit = self._run_version(run_id)
        return self.version(*hit) if hit else None

    def _run_version(self, run_id: uuid.UUID | str) -> tuple[str, int] | None:
        try:
            rid = uuid.UUID(str(run_id))
        except ValueError:
            return None
        with self.store.read() as s:
            return q.version_by_run(s, rid)

    def card(self, name: str, number: int, *, run: dict[str, Any] | None = None) -> ModelCard:
        with self.store.read() as s:
            m = self._model(s, name)
            v = self._version(s, m, number)
            events = q.alias_events(s, m.id)
            lineage = []
            erased = [ErasureNote(erasure_id=e.erasure_id, at=e.created_at.isoformat(),
                                  dataset=e.dataset, version=e.old_version,
                                  new_version=e.new_version, rows_removed=e.rows_removed)
                      for e in (eq.erasures_of_version(s, v.dataset, v.dataset_version)
                                if v.dataset and v.dataset_version else [])]
            if v.dataset and v.dataset_version:
                node = version_node(v.dataset, v.dataset_version)
                trained_by = run_node(v.run_id) if v.run_id else None
                # this version's own chain: not every run or drift report the data fed
                lineage = [CardEdge(src=e.src, dst=e.dst, relation=e.relation)
                           for e in lq.edges_touching(s, node)
                           if e.dst in (node, trained_by) or e.relation == "version_of"]
        public = _version_public(name, v, _replay(events))
        facts = v.card or {}
        promotions = [_event_public(e) for e in events if e.version_number == number]
        return build_card(model=name, version=public, run=run, purpose=facts.get("purpose"),
                          limitations=list(facts.get("limitations") or []),
                          contract_version=facts.get("contract_version"), lineage=lineage,
                          promotions=promotions, warnings=list(facts.get("warnings") or []),
                          erased=erased, importances=facts.get("importances"))

    def card_markdown(self, name: str, number: int, *, run: dict[str, Any] | None = None) -> str:
        return render_markdown(self.card(name, number, run=run))

    # -- aliases -------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> the version it points at now."""
        with self.store.read() as s:
            return _replay(q.alias_events(s, self._model(s, name).id))

    def alias(self, name: str, alias: str) -> AliasPointer:
        check_alias(alias)
        current = self.aliases(name).get(alias)
        if current is None:
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        return AliasPointer(alias=alias, version=current)

    def history(self, name: str, alias: str) -> list[AliasEvent]:
        """The alias's moves, newest first."""
        check_alias(alias)
        with self.store.read() as s:
            events = q.alias_events(s, self._model(s, name).id, alias)
        return [_event_public(e) for e in reversed(events)]

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str, by: Principal | str,
        force: bool = False, action: str = "set",
    ) -> AliasChange:
        check_alias(alias)
        if not isinstance(reason, str) or len(reason) > 2000:
            raise InvalidInput("a reason is text of at most 2000 characters")
        with self.store.write() as s:
            m = self._model(s, name)
            v = self._version(s, m, version)
            current = _replay(q.alias_events(s, m.id)).get(alias)
            if current == version:
                raise Conflict(f"{alias} already points at {name} v{version}")
            if alias == CHAMPION and not force:
                _check_gate(name, v, current)
            if alias == CHAMPION and v.status == VersionStatus.pending_approval.value \
                    and action != "approve" and not force:
                raise Conflict(f"{name} v{version} waits for approval: approve it, or force")
            self._move(s, m, alias, version, current, action=action, forced=force,
                       reason=reason, by=by)
        self.events.publish(AliasMoved(name, alias, version, current, action))
        return AliasChange(alias=alias, version=version, previous_version=current)

    def rollback(self, name: str, alias: str, *, reason: str, by: Principal) -> AliasChange:
        """Point ``alias`` back at the version it pointed at before its last move."""
        check_alias(alias)
        with self.store.write() as s:
            m = self._model(s, name)
            events = q.alias_events(s, m.id, alias)
            if not events or events[-1].version_number is None:
                raise Conflict(f"{alias} of {name} points at nothing: nothing to roll back")
            target = events[-1].previous_version
            if target is None:
                raise Conflict(f"{alias} of {name} has no earlier version to go back to")
            self._move(s, m, alias, target, events[-1].version_number, action="rollback",
                       forced=False, reason=reason, by=by)
        self.events.publish(AliasMoved(name, alias, target, events[-1].version_number, "rollback"))
        return AliasChange(alias=alias, version=target,
                           previous_version=events[-1].version_number)

    def approve(self, name: str, version: int, *, reason: str, by: Principal) -> AliasChange:
        with self.store.write() as s:
            m = self._model(s, name)
            v = self._version(s, m, version)
            if v.status != VersionStatus.pending_approval.value:
                raise Conflict(f"{name} v{version} is not waiting for approval")
            v.status = VersionStatus.ready.value
            s.add(v)
            current = _replay(q.alias_events(s, m.id)).get(CHAMPION)
            self._move(s, m, CHAMPION, version, current, action="approve", forced=False,
                       reason=reason, by=by)
        self.events.publish(AliasMoved(name, CHAMPION, version, current, "approve"))
        return AliasChange(alias=CHAMPION, version=version, previous_version=current)

    def _move(self, s: Any, m: RegisteredModelRow, alias: str, version: int | None,
              previous: int | None, *, action: str, forced: bool, reason: str,
              by: Principal | str) -> None:
        actor = by.actor if isinstance(by, Principal) else by
        q.add_alias_event(s, AliasEventRow(
            model_id=m.id, alias=alias, version_number=version, previous_version=previous,
            action=action, forced=forced, reason=reason, actor=actor,
        ))
        # lineage: model version -aliased_as-> this move -move_of-> the alias (history stays)
        move = alias_node(m.name, alias, len(q.alias_events(s, m.id, alias)))
        if version is not None:
            lq.add_edge(s, src=model_node(m.name, version), dst=move, relation="aliased_as")
        lq.add_edge(s, src=move, dst=alias_node(m.name, alias), relation="move_of")
        self.auditor.record(s, by, f"model.alias.{action}", f"model:{m.name}#{alias}",
                            before={"version": previous},
                            after={"version": version, "forced": forced, "reason": reason})
        changes.note(s, Topic.alias, m.name)  # every other host reloads the model's aliases

    # -- helpers -----------------------------------------------------------------------

    def _model(self, s: Any, name: str) -> RegisteredModelRow:
        check_dataset_name(name)
        m = q.get_model(s, name)
        if m is None:
            raise NotFound(f"model {name!r} does not exist")
        return m

    def _version(self, s: Any, m: RegisteredModelRow, number: int) -> ModelVersionRow:
        v = q.get_version(s, m.id, number)
        if v is None:
            raise NotFound(f"model {m.name!r} has no version {number}")
        return v


def _model_public(m: RegisteredModelRow, versions: list[ModelVersionRow],
                  aliases: dict[str, int]) -> Model:
    """``versions`` newest first."""
    return Model(name=m.name, created_at=m.created_at,
                 latest_version=versions[0].number if versions else None, aliases=aliases)


def _version_public(name: str, v: ModelVersionRow, aliases: dict[str, int]) -> ModelVersion:
    facts = v.card or {}
    gate = facts.get("gate")
    return ModelVersion(
        model=name, number=v.number, status=VersionStatus(v.status), run_id=v.run_id,
        flavor=v.flavor, task=v.task, onnx_sha256=v.onnx_sha256, onnx_size=v.onnx_size,
        signature=readable(v.signature), parity=v.parity, metrics=v.metrics,
        fairness=v.fairness, gate=Gate.model_validate(gate) if gate else None,
        warnings=[str(w) for w in facts.get("warnings") or []],
        dataset=v.dataset, dataset_version=v.dataset_version,
        aliases=sorted(a for a, n in aliases.items() if n == v.number),
        created_by=v.created_by, created_at=v.created_at,
        outliers=OutlierDetector.from_facts(v.outlier_sha256, facts.get("outliers"))
        if v.outlier_sha256 else None,
    )


def _check_gate(name: str, v: ModelVersionRow, current: int | None) -> None:
    gate = (v.card or {}).get("gate")
    if current is None:
        if v.parity is not None and not v.parity.get("passed", False):
            raise Conflict(f"{name} v{v.number} failed its parity check")
        return
    if not gate:
        raise Conflict(
            f"{name} v{v.number} has no comparison with champion v{current}: force it "
            "(audited) if you mean it", detail={"gate": None})
    if gate.get("champion_version") != current:
        raise Conflict(
            f"{name} v{v.number} was compared with champion v{gate.get('champion_version')}, "
            f"but the champion is now v{current}: retrain, or force it", detail={"gate": gate})
    if not gate.get("passed"):
        raise Conflict(
            f"{name} v{v.number} does not beat champion v{current} on {gate.get('metric')} "
            f"({gate.get('value')} vs {gate.get('champion_value')}, min_delta "
            f"{gate.get('min_delta')})", detail={"gate": gate})


def _replay(events: list[AliasEventRow]) -> dict[str, int]:
    current: dict[str, int] = {}
    for e in events:
        if e.version_number is None:
            current.pop(e.alias, None)
        else:
            current[e.alias] = e.version_number
    return current


def _event_public(e: AliasEventRow) -> AliasEvent:
    return AliasEvent(alias=e.alias, version=e.version_number,
                      previous_version=e.previous_version, action=e.action, forced=e.forced,
                      reason=e.reason, actor=e.actor, at=e.created_at)


def _check_loads(data: bytes) -> None:
    """Refuse a model onnxruntime cannot load now, rather than at its first request."""
    from appliance.train.child.parity import onnx_session

    try:
        onnx_session(data)
    except Exception as exc:  # onnxruntime raises its own types
        raise InvalidInput(f"onnxruntime cannot load the model: {str(exc)[:500]}",
                           detail={"field": "onnx", "reason": "not_servable"}) from exc
