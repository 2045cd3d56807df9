"""A plugin module that ends any worker process that loads it (HARNESS_PLUGINS), as a broken
native extension would; the driver, which loads it too, lives."""
import multiprocessing
import os

if multiprocessing.parent_process() is not None:
    os._exit(7)
