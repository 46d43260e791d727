"""Planning in latent space: planners search action sequences ``(B, S, H, A)`` to minimise a cost ``(B, S)``.

One algorithm per module (``cem``, ``icem``, ``mppi``, ``gradient``, ``nevergrad``), each a frozen dataclass of its
settings behind the ``Planner`` protocol of ``base``; ``registry`` builds them from ``plan.planner``. ``objectives``
holds the latent goal costs that, composed with a world-model rollout (``dynamics``), form the ``CostFn``;
``simulator`` is the true env as the model. The loop that executes plans is `jepa_wms.evaluation.mpc.run_mpc`.
"""

from jepa_wms.planning.base import CostFn, Planner, PlanResult
from jepa_wms.planning.cem import CEMPlanner
from jepa_wms.planning.gradient import GradientPlanner
from jepa_wms.planning.icem import ICEMPlanner, ICEMSession
from jepa_wms.planning.mppi import MPPIPlanner
from jepa_wms.planning.nevergrad import NevergradPlanner
from jepa_wms.planning.objectives import VALID_KINDS, goal_cost

__all__ = [
    "VALID_KINDS",
    "CEMPlanner",
    "CostFn",
    "GradientPlanner",
    "ICEMPlanner",
    "ICEMSession",
    "MPPIPlanner",
    "NevergradPlanner",
    "PlanResult",
    "Planner",
    "goal_cost",
]
