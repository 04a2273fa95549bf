#!/usr/bin/env python3
"""Reads a run directory's TensorBoard event file with TensorBoard's own reader and prints every
scalar as CSV lines `tag,step,value` (tests/events.rs compares them with metrics.csv)."""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

if __name__ == "__main__":
    accumulator = EventAccumulator(sys.argv[1])
    accumulator.Reload()
    for tag in sorted(accumulator.Tags()["scalars"]):
        for event in accumulator.Scalars(tag):
            print(f"{tag},{event.step},{event.value!r}")
