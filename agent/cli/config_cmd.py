"""edge-agent config check: validate a configuration file (every error at once, exit code 2)."""

from __future__ import annotations

import argparse
import os
from typing import Any, Mapping

from agent.cli.common import add_common, config_path, emit, load_node
from agent.config.render import render_yaml
from agent.config.sections import Config
from agent.model.pipeline import make_decoder, prepare_model
from agent.mqtt.keys import load_verifier
from agent.sources.open import probe_decodable


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config", help="check or print the configuration", description="Configuration tools."
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION")
    actions.required = True
    check = actions.add_parser("check", help="validate a configuration file", description=__doc__)
    add_common(check)
    check.add_argument("--show", action="store_true", help="also print the resolved configuration")
    check.set_defaults(handler=run_check)
    default = actions.add_parser("default", help="print the documented default configuration (config.yaml)")
    default.set_defaults(handler=run_default)


def run_check(args: argparse.Namespace) -> int:
    cfg = load_node(args)
    if cfg.commands.enabled and cfg.commands.key_file:
        load_verifier("commands.key_file", cfg.commands.key_file)  # what run would refuse: empty, malformed
    config = Config.from_node(cfg)
    result = {"valid": True, "config": config_path(args) or "defaults", "model": check_model(config)}
    check_local_sources(config)
    if args.show:
        result["resolved"] = cfg

    def human(data: Mapping[str, Any]) -> str:
        text = f"{data['config']}: valid (model {data['model']})"
        if "resolved" in data:
            import yaml

            text += "\n" + yaml.safe_dump(dict_tree(data["resolved"]), sort_keys=False)
        return text

    emit(args, result, human)
    return 0


def check_model(config: Config) -> str:
    """What run would refuse about the model (its inputs, outputs, labels, decoder settings), raised
    as InputError; a model file not installed on this machine is reported as not checked."""
    if not config.model.path.startswith("pkg:") and not os.path.isfile(config.model.path):
        return f"not checked: model file not found here: {config.model.path}"
    model = prepare_model(config.model)  # refuses a model the pipeline cannot feed
    make_decoder(config.model, model)
    return "checked"


def check_local_sources(config: Config) -> None:
    """What run would refuse about a file or image-folder source present here: one that opens but
    gives no frame is an InputError naming its id and uri (sources not on this machine are skipped)."""
    for source in config.sources:
        present = os.path.isfile(source.uri) if source.kind == "file" else os.path.isdir(source.uri)
        if source.kind in ("file", "images") and present:
            probe_decodable(source)


def dict_tree(node: Any) -> Any:
    return {k: dict_tree(v) for k, v in node.items()} if isinstance(node, dict) else node


def run_default(args: argparse.Namespace) -> int:
    print(render_yaml(), end="")
    return 0
