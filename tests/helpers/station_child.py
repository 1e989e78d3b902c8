"""A station process for crash tests: the demo line, plus a journal of fired pulses.

Run as ``python -m tests.helpers.station_child DATA_DIR FIRED_LOG [SEED]``. Every pulse
appends ``<mask_id> <accept|reject>`` to FIRED_LOG and fsyncs it, so a test that kills
this process with SIGKILL knows exactly which pulses went out.
"""

from __future__ import annotations

import os
import sys
import time

from station.config import load_config
from station.runtime import build_simulated_runtime
from station.simulator import SimulatedLine, line_timing_ms


def main() -> None:
    data_dir, fired_log = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    overrides = {"storage": {"data_dir": data_dir}, "simulator": {"seed": seed}}
    config = load_config(overrides=overrides)
    config = load_config(overrides={**overrides, "line": line_timing_ms(config)})
    line = SimulatedLine(config)
    log = open(fired_log, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def fired(item) -> None:
        log.write(f"{item.mask_id} {item.fired}\n")
        log.flush()
        os.fsync(log.fileno())

    rt = build_simulated_runtime(config, line, serve=False)
    rt.station.actuator.on_fired.append(fired)
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
