"""The vehicle SSD's float16 constants are widened to float32 in place of their DEQUANTIZE ops."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np

from training.detector.ssd_float32 import drop_unread_buffers, widen

DEQUANTIZE, CONV, FLOAT16, FLOAT32 = 6, 3, 1, 0


class Buffer:
    def __init__(self, data: np.ndarray | None = None) -> None:
        self.data = data


SCHEMA = NS(
    BuiltinOperator=NS(DEQUANTIZE=DEQUANTIZE),
    TensorType=NS(FLOAT16=FLOAT16),
    BufferT=Buffer,
)


def _model(weights: np.ndarray) -> NS:
    # t0: float16 weights -> DEQUANTIZE -> t1; CONV(t2 input, t1) -> t3 output
    tensors = [NS(type=FLOAT16, buffer=1), NS(type=FLOAT32, buffer=0),
               NS(type=FLOAT32, buffer=0), NS(type=FLOAT32, buffer=0)]
    ops = [
        NS(opcodeIndex=0, inputs=[0], outputs=[1]),
        NS(opcodeIndex=1, inputs=[2, 1], outputs=[3]),
    ]
    return NS(
        operatorCodes=[NS(builtinCode=DEQUANTIZE, deprecatedBuiltinCode=DEQUANTIZE),
                       NS(builtinCode=CONV, deprecatedBuiltinCode=CONV)],
        subgraphs=[NS(tensors=tensors, operators=ops, inputs=[2], outputs=[3])],
        buffers=[Buffer(), Buffer(np.frombuffer(weights.astype(np.float16).tobytes(), np.uint8))],
    )


def test_the_weights_are_widened_the_dequantize_dropped_and_the_float16_copy_emptied() -> None:
    weights = np.array([0.5, -1.25, 3.0], np.float32)
    model = _model(weights)
    assert widen(model, SCHEMA) == 1
    graph = model.subgraphs[0]
    assert [op.opcodeIndex for op in graph.operators] == [1]  # the CONV alone
    wide = model.buffers[graph.tensors[1].buffer].data
    np.testing.assert_array_equal(np.frombuffer(bytes(wide), np.float32), weights)
    drop_unread_buffers(model)
    assert model.buffers[1].data is None  # nothing reads the float16 tensor any more
    assert model.buffers[graph.tensors[1].buffer].data is not None


def test_a_dequantize_of_a_computed_tensor_is_kept() -> None:
    model = _model(np.zeros(2, np.float32))
    model.subgraphs[0].tensors[0] = NS(type=FLOAT32, buffer=0)  # not a float16 constant
    assert widen(model, SCHEMA) == 0
    assert len(model.subgraphs[0].operators) == 2
