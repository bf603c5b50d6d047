"""The `labmgr` command against a live labmgr server."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User

from labcli import completion
from labcli.main import main, parser
from labmgr.labs.models import Lab
from labmgr.labs.services import lab_create
from tests.unit.labmgr.conftest import small_labfile

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "labmgr" / "credentials.json"
    monkeypatch.setenv("LABMGR_CONFIG", str(path))
    for name in ("LABMGR_SERVER", "LABMGR_TOKEN", "LABMGR_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def logged_in(live_server: Any, alice: User, config: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LABMGR_PASSWORD", "alice-password")
    assert main(["login", "--server", live_server.url, "--user", "alice"]) == 0
    return str(live_server.url)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_login_stores_the_token_for_the_user_alone(
    live_server: Any,
    alice: User,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LABMGR_PASSWORD", "alice-password")
    code, out, _ = run(capsys, "login", "--server", live_server.url, "--user", "alice")
    assert code == 0
    assert out == f"Logged in to {live_server.url} as alice; token stored in {config}.\n"
    stored = json.loads(config.read_text())
    assert stored["server"] == live_server.url
    assert len(stored["token"]) > 10
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert run(capsys, "labs")[0] == 0


def test_wrong_password_is_the_servers_sentence(
    live_server: Any,
    alice: User,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LABMGR_PASSWORD", "wrong")
    code, _, err = run(capsys, "login", "--server", live_server.url, "--user", "alice")
    assert code == 1
    assert "The user name or password is wrong." in err
    assert not config.exists()


def test_server_down_is_a_connection_error(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LABMGR_PASSWORD", "x")
    code, _, err = run(capsys, "login", "--server", "http://127.0.0.1:9", "--user", "alice")
    assert code == 2
    assert "cannot reach http://127.0.0.1:9" in err


def test_not_logged_in(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "labs")
    assert code == 2
    assert "labmgr login" in err


def test_environment_token_overrides_the_file(
    logged_in: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LABMGR_TOKEN", "not-a-token")
    code, _, err = run(capsys, "labs")
    assert code == 1
    assert "token" in err.lower()


def test_labs_lists_name_nodes_and_state(
    logged_in: str, alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = lab_create(owner=alice, labfile_tree=small_labfile("demo"))
    code, out, _ = run(capsys, "labs")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "NAME", "NODES", "DEPLOYMENT"]
    assert row.split() == [str(lab.pk), "demo", "2", "-"]


def test_show_by_name_and_by_id(
    logged_in: str, alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = lab_create(owner=alice, labfile_tree=small_labfile("demo"))
    for key in ("demo", str(lab.pk)):
        code, out, _ = run(capsys, "show", key)
        assert code == 0
        assert "name:        demo" in out
        assert "nodes:       client, web" in out
    code, _, err = run(capsys, "show", "nope")
    assert (code, err) == (1, "labmgr: lab: no lab is named 'nope'.\n")
    code, _, err = run(capsys, "show", "999999")
    assert code == 1
    assert "not found" in err.lower()


def test_import_prints_the_lab_and_notes(
    logged_in: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topology = tmp_path / "lab.clab.yml"
    topology.write_text(
        yaml.safe_dump(
            {
                "name": "clab",
                "topology": {
                    "nodes": {"a": {"kind": "linux", "image": "alpine:3"}, "b": {"kind": "linux"}},
                    "links": [{"endpoints": ["a:eth1", "b:eth1"]}],
                },
            }
        )
    )
    code, out, err = run(capsys, "import", str(topology), "--format", "containerlab")
    assert code == 0, err
    lab = Lab.objects.get(name="clab")
    assert out.splitlines() == [
        f"Imported lab {lab.pk}: clab",
        "note: topology.nodes.b: no image: the node runs the host's tree (rootfs: host)",
        "note: mgmt: the management network 'clab' is 172.20.20.0/24, as in containerlab",
    ]


def test_import_refused_names_the_field(
    logged_in: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(small_labfile("bad", nodes={"web": {"limits": {"memory": "x"}}})))
    code, _, err = run(capsys, "import", str(bad))
    assert code == 1
    assert "nodes.web.limits.memory" in err
    assert not Lab.objects.filter(name="bad").exists()


def test_export_to_a_file_round_trips(
    logged_in: str, alice: User, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab_create(owner=alice, labfile_tree=small_labfile("demo"))
    target = tmp_path / "demo.yaml"
    code, _, _ = run(capsys, "export", "demo", "-o", str(target))
    assert code == 0
    tree = yaml.safe_load(target.read_text())
    assert tree["name"] == "demo"
    assert set(tree["nodes"]) == {"web", "client"}
    code, out, _ = run(capsys, "export", "demo", "--format", "compose")
    assert code == 0
    assert set(yaml.safe_load(out)["services"]) == {"web", "client"}


def test_validate_locally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(small_labfile("demo")))
    assert run(capsys, "validate", str(good)) == (0, f"{good}: valid labfile 'demo'.\n", "")
    bad = tmp_path / "bad.yaml"
    tree = small_labfile("demo")
    tree["nodes"]["web"]["limits"]["memory"] = "lots"
    tree["networks"]["lan"]["subnet"] = "nonsense"
    bad.write_text(yaml.safe_dump(tree))
    code, _, err = run(capsys, "validate", str(bad))
    assert code == 1
    assert "nodes.web.limits.memory" in err
    assert "networks.lan.subnet" in err
    code, _, err = run(capsys, "validate", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "cannot read" in err


def test_convert_locally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "demo.yaml"
    source.write_text(yaml.safe_dump(small_labfile("demo")))
    code, out, _ = run(capsys, "convert", str(source), "--to", "compose")
    assert code == 0
    assert set(yaml.safe_load(out)["services"]) == {"web", "client"}
    code, out, _ = run(capsys, "convert", str(source), "--to", "containerlab")
    assert code == 0
    assert set(yaml.safe_load(out)["topology"]["nodes"]) == {"web", "client"}
    code, _, err = run(capsys, "convert", str(source), "--to", "nope")
    assert code == 2
    assert "invalid choice" in err


def test_deploy_without_a_host_is_refused(
    logged_in: str, alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    lab_create(owner=alice, labfile_tree=small_labfile("demo"))
    assert run(capsys, "deploy", "demo", "--wait") == (
        1,
        "",
        "labmgr: No host is online to deploy on.\n",
    )


def test_status_and_exec_of_a_lab_never_deployed(
    logged_in: str, alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    lab_create(owner=alice, labfile_tree=small_labfile("demo"))
    assert run(capsys, "status", "demo") == (
        1,
        "",
        "labmgr: lab: 'demo' has never been deployed.\n",
    )
    code, _, err = run(capsys, "exec", "demo", "web", "--", "true")
    assert code == 1
    assert "never been deployed" in err
    code, _, err = run(capsys, "exec", "demo", "web")
    assert code == 2
    assert "CMD" in err


def test_ls_and_inspect_speak_json_for_scripts(
    logged_in: str, alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = lab_create(owner=alice, labfile_tree=small_labfile("demo"))
    code, out, _ = run(capsys, "ls", "--format", "json")
    assert code == 0
    assert json.loads(out) == [
        {
            "id": lab.pk,
            "name": "demo",
            "owner": "alice",
            "nodes": 2,
            "deployment": None,
            "status": None,
        }
    ]
    code, out, _ = run(capsys, "inspect", "demo", "--format", "json")
    assert code == 0
    body = json.loads(out)
    assert body["deployment"] is None
    assert set(body["lab"]["labfile"]["nodes"]) == {"web", "client"}
    code, out, _ = run(capsys, "inspect", "demo")
    assert code == 0
    assert out.splitlines()[-1] == "deployment:  -"


def test_network_ls_lists_each_labs_networks(
    logged_in: str, alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    lab_create(owner=alice, labfile_tree=small_labfile("demo"))
    code, out, _ = run(capsys, "network", "ls")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["LAB", "NETWORK", "DRIVER", "SUBNET", "SUBNET6"]
    assert row.split() == ["demo", "lan", "bridge", "10.10.0.0/24", "-"]
    code, out, _ = run(capsys, "network", "ls", "demo", "--format", "json")
    assert [n["network"] for n in json.loads(out)] == ["lan"]


def test_graph_draws_nodes_networks_and_links(
    logged_in: str, alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = small_labfile("drawn", labfile=2)
    tree["links"] = [{"endpoints": ["web:eth1", "client:eth1"]}]
    lab_create(owner=alice, labfile_tree=tree)
    code, out, _ = run(capsys, "graph", "drawn")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "graph LR"
    assert '  node_web["web"]' in lines
    assert '  net_lan(["lan<br/>bridge 10.10.0.0/24"])' in lines
    assert any(line.startswith("  node_client ---|") and "net_lan" in line for line in lines)
    assert '  node_web ---|"web:eth1 - client:eth1"| node_client' in lines
    code, out, _ = run(capsys, "graph", "drawn", "--format", "dot")
    assert code == 0
    assert out.startswith('graph "drawn" {')
    assert '  node_web -- node_client [label="web:eth1 - client:eth1"];' in out


def test_deploy_of_a_file_makes_the_lab_then_updates_it(
    logged_in: str, alice: User, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "name: shop\nservices:\n  web: {image: nginx:1.27}\n  db: {image: postgres:16}\n"
    )
    code, out, err = run(capsys, "deploy", str(compose), "--detach")
    lab = Lab.objects.get(owner=alice, name="shop")
    assert out.splitlines() == [f"Created lab {lab.pk}: shop, from {compose}"]
    # No host is online here: the deploy itself is refused, in the server's words.
    assert (code, err.splitlines()[-1]) == (1, "labmgr: No host is online to deploy on.")

    compose.write_text("name: shop\nservices:\n  web: {image: nginx:1.27}\n")
    code, out, _ = run(capsys, "deploy", str(compose), "--detach")
    assert out.splitlines() == [f"Updated lab {lab.pk}: shop, from {compose}"]
    assert list(Lab.objects.get(pk=lab.pk).nodes.values_list("name", flat=True)) == ["web"]


def test_deploy_of_a_file_labmgr_cannot_make_names_the_files_fields(
    logged_in: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text("name: built\nservices:\n  app: {build: .}\n")
    code, out, err = run(capsys, "deploy", str(compose))
    assert (code, out) == (1, "")
    assert err == "services.app.build: labmgr does not build images; give the service an image\n"
    assert not Lab.objects.filter(name="built").exists()


def test_logs_of_a_lab_never_deployed(
    logged_in: str, alice: User, capsys: pytest.CaptureFixture[str]
) -> None:
    lab_create(owner=alice, labfile_tree=small_labfile("demo"))
    assert run(capsys, "logs", "demo") == (1, "", "labmgr: lab: 'demo' has never been deployed.\n")


def test_bash_completion_offers_the_commands_and_their_options(tmp_path: Path) -> None:
    script = tmp_path / "labmgr.bash"
    script.write_text(completion.script(parser(), "bash"))

    def complete(*words: str) -> list[str]:
        program = (
            f"source {script}; COMP_WORDS=(labmgr {' '.join(words) or chr(39) * 2});"
            f" COMP_CWORD={len(words)}; _labmgr; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        )
        done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert {"deploy", "inspect", "network", "shell", "graph", "ls"} <= set(complete(""))
    assert complete("dep") == ["deploy"]
    assert complete("deploy", "lab.yaml", "--d") == ["--detach"]
    assert complete("network", "") == ["ls"]
    assert complete("graph", "x", "--f") == ["--format"]


def test_live_changes_from_the_command_line(
    logged_in: str,
    alice: User,
    online_host: Any,
    dispatched: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from labmgr.deployments.lifecycle import deployment_deploy
    from labmgr.deployments.services import deployment_result_record

    lab = lab_create(owner=alice, labfile_tree=small_labfile("demo"))
    deployment = deployment_deploy(lab=lab, actor=alice)
    deployment_result_record(
        deployment_id=deployment.pk, action="apply", ok=True, error="", nodes=[]
    )

    assert run(capsys, "set", "demo", "interface", "web:eth0", "loss=30%", "delay=10ms") == (
        0,
        "set delay 10ms loss 30% on interface web:eth0: done (2 ms at the agent)\n",
        "",
    )
    code, shown, _ = run(capsys, "live", "demo")
    assert code == 0
    assert "web:eth0     up     delay=10ms loss=30% *\n" in shown
    assert "client:eth0  up     -\n" in shown and "web     running\n" in shown

    code, _, err = run(capsys, "set", "demo", "interface", "web:eth0", "loss=300%")
    assert code == 1 and "set.loss" in err and "between 0% and 100%" in err
    code, _, err = run(capsys, "set", "demo", "web:eth0", "loss=3%")
    assert code == 2 and "invalid choice: 'web:eth0'" in err

    assert run(capsys, "node", "stop", "demo", "web")[0] == 0
    code, _, err = run(capsys, "up", "demo", "web:eth0")
    assert code == 1 and "start it first" in err
    assert run(capsys, "restore", "demo")[:2] == (
        0,
        "restore everything: done (2 ms at the agent)\n",
    )
    sent = [kwargs["changes"] for task, _, kwargs in dispatched.sent if task == "live"]
    assert sent[1] == [{"node": "web", "action": "stop"}]
    assert sent[2][0] == {"node": "web", "action": "start", "down": []}


def test_scenarios_from_the_command_line(
    logged_in: str,
    alice: User,
    online_host: Any,
    dispatched: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from labmgr.deployments import scenarios
    from labmgr.deployments.lifecycle import deployment_deploy
    from labmgr.deployments.services import deployment_result_record

    steps = [{"at": "0s", "down": "web:eth0"}, {"at": "3600s", "up": "web:eth0"}]
    lab = lab_create(
        owner=alice, labfile_tree=small_labfile("demo", labfile=2, scenarios={"cut": steps})
    )
    deployment = deployment_deploy(lab=lab, actor=alice)
    deployment_result_record(
        deployment_id=deployment.pk, action="apply", ok=True, error="", nodes=[]
    )

    code, shown, _ = run(capsys, "scenario", "run", "demo", "cut", "--detach")
    assert (code, shown) == (0, "scenario cut (run 1): 2 steps\n")
    scenarios.scenarios_tick()
    code, shown, _ = run(capsys, "scenario", "pause", "demo")
    assert code == 0 and shown.startswith("scenario cut (run 1): paused at ")
    code, shown, _ = run(capsys, "scenario", "ls", "demo")
    assert "1    cut       paused  1/2    0       alice" in shown
    assert run(capsys, "scenario", "stop", "demo")[0] == 0
    code, shown, _ = run(capsys, "scenario", "show", "1")
    assert shown.splitlines()[1:] == [
        "      0s [ok    ] down interface web:eth0",
        "       [ok    ] restore everything",
    ]
    target = tmp_path / "run.json"
    assert run(capsys, "scenario", "show", "1", "-o", str(target))[0] == 0
    assert json.loads(target.read_text())["state"] == "stopped"
    code, _, err = run(capsys, "scenario", "stop", "demo")
    assert code == 1 and "no scenario is running" in err
    bad = tmp_path / "steps.yaml"
    bad.write_text("- {at: 1s, stop: ghost}\n")
    code, _, err = run(capsys, "scenario", "run", "demo", "mine", "-f", str(bad))
    assert code == 1 and "steps.0.stop: the lab has no node 'ghost'" in err
