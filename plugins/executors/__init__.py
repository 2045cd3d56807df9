"""Executors that are plugins: Slurm through submitit (``pip install 'harness[slurm]'``)."""
