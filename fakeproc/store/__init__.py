"""The store: what fakeproc keeps, and how the charge path keeps it fast and race-safe.

Tables and their migrations (`models`, `schema`, `migrations/`), the statements of the charge
path run straight on the driver (`transactions`, `fast_sql`) on a connection of the attempt's
own (`attempt_connection`), SQLite writers taking turns (`sqlite_write_turns`), the version that
tells every process its cached rules and connectors are stale (`config_version`), and the
ledger's read queries with keyset pages (`ledger`, `paging`). Modules here import only each
other and fakeproc's shared leaves (`fakeproc.config`, `fakeproc.errors`, `fakeproc.settings`),
never the processor, the control layer, the web or Twilio's side.
"""
