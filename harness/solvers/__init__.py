"""Solver backends: the settings every solve reads (settings), the backend interface
(backends) and an ensemble's solve (members), the torchdiffeq reference, the fast backend (fast/: integrators, adjoint), the
hand-written vector-Jacobian products (pullbacks), torchode, the proximal implicit methods (proximal/: options, inner solvers, schemes), and
the built-in set (built_in).

May import: harness.contract.
"""
