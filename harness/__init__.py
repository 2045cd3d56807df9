"""harness: a benchmark harness for neural ODE models.

Plugin authors need only what is re-exported here; see :mod:`harness.contract`.
"""
from harness.contract import (CONTRACT_VERSION, BuildContext, DataNotFound, Family, Task,
                              TaskData, data_root_or_default, hookimpl, hookspec)

__version__ = "0.1.0"

__all__ = ["CONTRACT_VERSION", "BuildContext", "DataNotFound", "Family", "Task", "TaskData",
           "data_root_or_default", "hookimpl", "hookspec", "__version__"]
