"""Energy and CO2-equivalent of a trial, with codecarbon's offline tracker (no network calls).

One segment per attempt of a trial; the runner adds each segment's reading to what earlier attempts left in
the trial's status, so a trial's total covers every interrupted segment. codecarbon exposes energy only
through a private method; it stays behind this one adapter, and a failure to read it never stops training.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
DEFAULT_COUNTRY = "FRA"  # ISO 3166 alpha-3; override in the grid (carbon.country) or ORCHESTRATOR_CARBON_COUNTRY


def country(configured: str | None) -> str:
    return configured or os.environ.get("ORCHESTRATOR_CARBON_COUNTRY") or DEFAULT_COUNTRY


class CarbonMeter:
    def __init__(self, country_iso: str, enabled: bool = True):
        self.country_iso, self.enabled = country_iso, enabled
        self._tracker = None

    def start(self) -> None:
        if not self.enabled:
            return
        try:
            from codecarbon import OfflineEmissionsTracker

            self._tracker = OfflineEmissionsTracker(
                country_iso_code=self.country_iso,
                save_to_file=False,
                log_level="error",
                measure_power_secs=5,
                tracking_mode="process",
                allow_multiple_runs=True,
            )
            self._tracker.start()
        except Exception as exc:  # carbon accounting must never cost a trial
            log.warning("codecarbon unavailable (%s): energy and emissions will read 0", exc)
            self._tracker = None

    def read(self) -> tuple[float, float]:
        """(kWh, kg CO2eq) of this segment so far."""
        if self._tracker is None:
            return 0.0, 0.0
        try:
            self._tracker._measure_power_and_energy_if_stale()
            data = self._tracker._prepare_emissions_data()
            return float(data.energy_consumed), float(data.emissions)
        except Exception as exc:
            log.warning("codecarbon reading failed (%s)", exc)
            return 0.0, 0.0

    def stop(self) -> tuple[float, float]:
        reading = self.read()
        if self._tracker is not None:
            try:
                self._tracker.stop()
            except Exception as exc:
                log.warning("codecarbon stop failed (%s)", exc)
            self._tracker = None
        return reading
