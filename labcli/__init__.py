"""labmgr's command line: a client of the REST API, plus local labfile tools."""
