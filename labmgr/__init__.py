"""labmgr: the Django control plane of the lab manager (unprivileged; owns the database)."""
