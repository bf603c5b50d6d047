"""The control plane's personas, for driving the command against a live server."""

from tests.unit.labmgr.conftest import (  # noqa: F401
    alice,
    bob,
    class_a,
    dispatched,
    fast_passwords,
    memory_channel_layer,
    online_host,
    single_user_install,
)
