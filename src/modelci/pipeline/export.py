"""Stage ``export``: the model's ONNX form, converted and checked against scikit-learn once, at
build time, so that ``modelci serve`` starts without converting (see
:mod:`modelci.serving.exported`). A model skl2onnx cannot convert, or one ONNX Runtime disagrees
with, gets a manifest saying why; serving then uses scikit-learn, as it would have anyway."""

from __future__ import annotations

from modelci.config import Params
from modelci.layout import DEFAULT_PATHS, StagePaths


def run(params: Params, paths: StagePaths = DEFAULT_PATHS) -> str:
    """Write ``paths.onnx`` (manifest, and model.onnx when the check passes); returns a note."""
    from modelci.modelfile import load_model_bytes, read_model_file
    from modelci.serving.exported import write_export
    from modelci.serving.schema import InputSchema

    data = read_model_file(paths.model)
    model = load_model_bytes(data, str(paths.model), params.trusted_types)
    return write_export(paths.onnx, data, model, InputSchema.from_params(params.data))
