"""Shell completion for `labmgr`, written from its own argument parser, so it always
offers the commands and options the installed version has: `labmgr completion bash`
(source it, or drop it in /etc/bash_completion.d/) and `labmgr completion zsh` (the
same script through zsh's bashcompinit)."""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh")


def words(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Each command (and `network ls`) -> the options and sub-commands it takes; "" ->
    the commands."""
    found: dict[str, list[str]] = {}

    def walk(prefix: str, node: argparse.ArgumentParser) -> None:
        options = [
            o
            for a in node._actions
            if a.help != argparse.SUPPRESS
            for o in a.option_strings
            if o.startswith("--")
        ]
        subs = [a for a in node._actions if isinstance(a, argparse._SubParsersAction)]
        names = [name for sub in subs for name in sub.choices]
        found[prefix] = sorted(set(names)) + sorted(set(options) - {"--help"})
        for sub in subs:
            for name, child in sub.choices.items():
                walk(f"{prefix} {name}".strip(), child)

    walk("", parser)
    return found


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    cases = "\n".join(
        f'        "{key}") opts="{" ".join(values)}" ;;' for key, values in words(parser).items()
    )
    body = f"""# labmgr completion ({shell}); from `labmgr completion {shell}`
_labmgr() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path="" word opts=""
    local i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case "$word" in -*) continue ;; esac
        case "$path" in
            ""|network) path="${{path:+$path }}$word" ;;
        esac
    done
    case "$path" in
{cases}
    esac
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    if [[ ${{#COMPREPLY[@]}} -eq 0 && "$cur" != -* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -F _labmgr labmgr
"""
    if shell == "zsh":
        body = "autoload -U +X bashcompinit && bashcompinit\n" + body
    return body
