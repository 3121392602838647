"""What a method takes from its teacher, per example: named tensors whose shapes may follow its length.

A field's shape names "L" where the example's token count goes, e.g. ("L", 384) for hidden states or
(12, "L", "L") for attention maps. Batches are right-padded, so an example's values are the leading
`length` positions of each "L" axis; that is what is stored, and padding comes back as zeros.
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

LENGTH = "L"
Dim = int | Literal["L"]
# float16 for what grows with the tokens; per-example vectors are small enough to keep in float32.
STORAGE_DTYPES = {"float16": torch.float16, "float32": torch.float32, "int32": torch.int32}


@dataclass(frozen=True)
class TeacherField:
    """The shape of one per-example teacher output and the dtype it is stored in."""

    shape: tuple[Dim, ...]
    dtype: Literal["float16", "float32", "int32"] = "float16"

    def example_shape(self, length: int) -> tuple[int, ...]:
        """The shape of one example of `length` tokens."""
        return tuple(length if dim == LENGTH else int(dim) for dim in self.shape)

    def numel(self, length: int) -> int:
        """Values stored for one example of `length` tokens."""
        return math.prod(self.example_shape(length))

    def nbytes(self, length: int) -> int:
        """Bytes stored for one example of `length` tokens."""
        return self.numel(length) * STORAGE_DTYPES[self.dtype].itemsize

    def cut(self, batched: Tensor, row: int, length: int) -> Tensor:
        """Row `row` of a right-padded batch, without its padding."""
        index = (row, *(slice(0, length) if dim == LENGTH else slice(None) for dim in self.shape))
        return batched[index]

    def pad(self, examples: list[Tensor], width: int, *, dtype: torch.dtype, device: torch.device) -> Tensor:
        """Examples stacked into a right-padded batch of `width` tokens, zeros in the padding."""
        batched = torch.zeros((len(examples), *self.example_shape(width)), dtype=dtype, device=device)
        for row, example in enumerate(examples):
            batched[(row, *(slice(0, size) for size in example.shape))] = example.to(device, dtype)
        return batched


TeacherFields = dict[str, TeacherField]
