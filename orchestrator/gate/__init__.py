"""The fatigue gate: consent, quiet hours in the customer's own zone, frequency caps across every
journey and channel, the suppression list and unsubscribe tokens.

One Lua call per send checks every cap and records the send on the customer's hash-tagged keys.
May import ``store`` (keys, the pipeline packer), ``engine``, ``language`` and the shared modules;
nothing above (checked by import-linter, see docs/architecture.md).
"""
