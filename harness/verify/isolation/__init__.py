"""Code that runs inside the verdict's two sandboxes, not in the harness.

The verdict runs the parity test in a trusted process and the agent's code in a separate port
process (see `harness.verify.verdict` and docs/isolation.md). These modules are copied into a
support folder of each sandbox and imported there by their top-level names, so they depend on
the standard library, pytest (trusted side only) and torch (numpy when present), never on
the harness package:

- `harness_wire`: the frame format and the value codec shared by both sides;
- `harness_port_server`: the port process: imports the port, serves requests on its objects;
- `harness_port_client`: the trusted side's channel, proxies and import finder;
- `harness_verdict_plugin`: the pytest plugin of the trusted process (records, seeding,
  comparisons, fail-closed limits);
- `harness_pytest`: how the trusted process runs pytest (`python -m pytest`, without the
  interpreter's teardown at the end).
"""

from pathlib import Path

FOLDER = Path(__file__).parent
TRUSTED_FILES = ("harness_wire.py", "harness_port_client.py", "harness_verdict_plugin.py", "harness_pytest.py")
PORT_FILES = ("harness_wire.py", "harness_port_server.py")
PLUGIN_MODULE = "harness_verdict_plugin"
SERVER_MODULE = "harness_port_server"
PYTEST_MODULE = "harness_pytest"
