"""The store's Lua scripts and how long its records live.

Each script is a ``scripts.<name>.lua`` file beside this module, after the shared functions it
needs (``scripts.lib_*.lua``: ``split`` cuts a run's core into its slots, ``keep_timer`` carries a
stored timer over, ``cas`` is one compare-and-set, ``index`` reads a runs hash, ``incr`` writes
measurement counts, ``window_end`` and ``day_of`` read measurement windows).  Scripts touch only
keys of one customer (one hash tag) so they stay valid on Redis Cluster.
"""

from __future__ import annotations

from orchestrator.store import lua

#: Finished enrollments are kept this long for reports and webhooks, then expire.
FINISHED_TTL = 90 * 86400
#: Seen event ids are kept this long (a replay older than this is treated as new).
SEEN_TTL = 30 * 86400
PROVIDER_ID_TTL = 30 * 86400

SCRIPTS = {
    "set_profile": lua.script(__name__, "set_profile"),
    "cas": lua.script(__name__, "lib_split", "lib_keep_timer", "lib_figures", "lib_cas", "cas"),
    "cas_many": lua.script(__name__, "lib_split", "lib_keep_timer", "lib_figures", "lib_cas", "cas_many"),
    "measure": lua.script(__name__, "lib_split", "lib_figures", "measure"),
    "timer": lua.script(__name__, "lib_split", "lib_figures", "timer"),
    "get": lua.script(__name__, "lib_split", "get"),
    "claim": lua.script(__name__, "claim"),
    "apply": lua.script(__name__, "apply"),
    "read": lua.script(__name__, "lib_split", "lib_index", "lib_figures", "read"),
    "read_many": lua.script(__name__, "lib_split", "lib_index", "read_many"),
}
