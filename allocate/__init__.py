"""Exact bit allocation over an RD table: one candidate encoding per image, under a byte cap or quality targets."""

from allocate.metrics import cap_from_bpp
from allocate.result import Allocation, InfeasibleError, NoSolutionError
from allocate.solve import OBJECTIVES, SOLVERS, solve_budget, solve_transparent
from allocate.table import RD_COLUMNS, BadTableError, load_rd_table, validate_rd_table

__all__ = [
    "Allocation", "BadTableError", "InfeasibleError", "NoSolutionError", "OBJECTIVES", "RD_COLUMNS", "SOLVERS",
    "cap_from_bpp", "load_rd_table", "solve_budget", "solve_transparent", "validate_rd_table",
]
