"""Which builtin operator a TFLite flatbuffer's operator code names.

Schema 3a moved builtin codes past 127 into ``builtinCode`` and keeps ``deprecatedBuiltinCode``
at most 127 (older files fill only the latter), so the code is the larger of the two. Works on
the object API of ``tensorflow.lite.tools.flatbuffer_utils`` (``OperatorCodeT``).
"""

from __future__ import annotations

from typing import Any


def builtin_code(code: Any) -> int:
    """The builtin operator ``code`` (an ``OperatorCodeT``) stands for."""
    return int(max(code.builtinCode, code.deprecatedBuiltinCode))


def op_builtin(model: Any, op: Any) -> int:
    """The builtin operator of ``op`` (an ``OperatorT`` of ``model``, a ``ModelT``)."""
    return builtin_code(model.operatorCodes[op.opcodeIndex])
