"""The fast backend: torchdiffeq's steps on one flat state (integrators), its adjoint
(adjoint), and the backend object (backend).

May import: harness.contract, harness.solvers.
"""
