#!/usr/bin/env python
"""The plan's verification command: `python tools/verify_robot.py --phase N` (same as `kobe verify --phase N`)."""

import sys

from kobe_pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main(["verify", *sys.argv[1:]]))
