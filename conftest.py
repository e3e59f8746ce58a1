"""Test-wide settings: notebooks run in the smoke profile, with throw-away checkpoints and outputs."""

import os
import tempfile

# Set before any kernel starts, so nbval's notebook kernels inherit them.
os.environ["ITEMCHEST_PROFILE"] = "smoke"
os.environ["ITEMCHEST_CHECKPOINTS"] = tempfile.mkdtemp(prefix="itemchest-checkpoints-")
os.environ["ITEMCHEST_OUTPUTS"] = tempfile.mkdtemp(prefix="itemchest-outputs-")
os.environ["ITEMCHEST_RESULTS"] = tempfile.mkdtemp(prefix="itemchest-results-")
os.environ["ITEMCHEST_PROGRESS"] = "text"
os.environ.setdefault("MPLBACKEND", "Agg")
