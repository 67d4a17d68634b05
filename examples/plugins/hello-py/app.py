"""hello-py: the plugin template in Python (componentize-py), built unchanged against the
`job-plugin` world of `wit/`. It uses no capability, so it loads with no grants.

Build (what `just plugins` runs, with the pinned toolchain of `just plugin-toolchains`):

    componentize-py -d wit -w job-plugin componentize -p examples/plugins/hello-py app \
        -o target/plugins/hello-py.wasm
"""

import json

from componentize_py_types import Err
from wit_world import WitWorld
from wit_world.imports import host
from wit_world.imports.types import Job, Outcome, Outcome_Completed, PluginInfo


def _name(spec: str) -> str:
    """The `name` of a spec like {"name": "Ada"}; raises ValueError on anything else."""
    value = json.loads(spec or "{}")
    if not isinstance(value, dict):
        raise ValueError("the spec must be a JSON object")
    name = value.get("name", "world")
    if not isinstance(name, str) or not name:
        raise ValueError("`name` must be a non-empty string")
    return name


class WitWorld(WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="hello-py",
            version="0.1.0",
            job_types=["hello-py"],
            description="Says hello (the Python plugin template)",
            capabilities=[],
            spec_schema=json.dumps(
                {"type": "object", "properties": {"name": {"type": "string"}}}
            ),
        )

    def validate(self, spec: str) -> None:
        try:
            _name(spec)
        except ValueError as e:
            raise Err(str(e))

    def run(self, job: Job) -> Outcome:
        name = _name(job.spec)
        host.log(host.LogLevel.INFO, f"greeting {name} (attempt {job.attempt})")
        host.progress(100, "done")
        return Outcome_Completed(json.dumps({"greeting": f"hello, {name}", "language": "python"}))
