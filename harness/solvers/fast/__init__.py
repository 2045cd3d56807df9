"""The fast backend: torchdiffeq's steps on one flat state (integrators), its adjoint
(adjoint), and the backend object (backend); for an ensemble, the same per member on an (M, N)
state (members, member_adjoint).

May import: harness.contract, harness.solvers.
"""
