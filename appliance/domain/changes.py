"""What the change feed announces to other hosts: a topic and a key. Pure.

Each topic names a host-local cache that a change committed through another host
makes stale (docs/scale-out.md, "Serving on every host"):

=========  =====================  ==========================================  =====================
topic      key                    written with (the same transaction)          each host then
=========  =====================  ==========================================  =====================
alias      model name             an alias set, rolled back or approved        reloads the model's
                                  (registry)                                   alias map and sessions
routing    model name             canary/shadow routing set (serving, the      re-reads the model's
                                  canary verdicts)                             routing
auth       user name, or          a token or session revoked, a user added,    drops every cached
           ``token:<id>``         changed or disabled, a bootstrap token       token check
                                  replaced (auth)
erasure    erasure id             an erasure applied (privacy.erasure)         drops every explainer
                                                                               (background samples)
=========  =====================  ==========================================  =====================
"""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    alias = "alias"
    routing = "routing"
    auth = "auth"
    erasure = "erasure"
