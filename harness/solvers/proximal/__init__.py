"""The proximal backend (the HBNODE author's dissertation, chapter 5): implicit methods whose
update is the minimiser of a proximal objective, found by an inner gradient method — its
options (options), the inner solvers (inner), the outer schemes (schemes) and the backend
object (backend). Its adjoint is the fast backend's flat-state adjoint driven by these schemes.

May import: harness.contract, harness.solvers.
"""
