"""Symmetric 3x3 matrices stored as their upper triangle, solved in closed form.

The least-squares fits of the post-filter (its torch form in ``dpst.optim_reference`` and its
NumPy twin in ``dpst.serve.runtime``) solve one 3x3 system per pixel; the cofactors are plain
products, so the same functions serve torch tensors and NumPy arrays of any shape.
"""

from __future__ import annotations

from typing import TypeVar

# Upper triangle of a symmetric 3x3 matrix, the order of sym3_cofactors' arguments.
SYM3 = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))

Array = TypeVar("Array")


def sym3_cofactors(
    c00: Array, c01: Array, c02: Array, c11: Array, c12: Array, c22: Array
) -> tuple[tuple[Array, ...], Array]:
    """Cofactors (in :data:`SYM3` order) and determinant of symmetric 3x3 matrices.

    The inverse is ``cofactor / det``; elementwise, so it vectorises over any shape.
    """
    m00 = c11 * c22 - c12 * c12
    m01 = c02 * c12 - c01 * c22
    m02 = c01 * c12 - c02 * c11
    m11 = c00 * c22 - c02 * c02
    m12 = c01 * c02 - c00 * c12
    m22 = c00 * c11 - c01 * c01
    det = c00 * m00 + c01 * m01 + c02 * m02
    return (m00, m01, m02, m11, m12, m22), det


def sym3_index(j: int, m: int) -> int:
    """Position of entry (j, m) of a symmetric 3x3 matrix in :data:`SYM3`."""
    return SYM3.index((min(j, m), max(j, m)))
