"""The Open Inference Protocol (KServe's "v2" REST API), beside modelci's own endpoints.

Routes: ``GET /v2`` (server metadata), ``GET /v2/health/live``, ``GET /v2/health/ready``,
``GET /v2/models/{name}[/versions/{version}]`` (model metadata), ``.../ready`` and
``POST .../infer``. An inference request goes through the same path as ``/predict``
(:meth:`ServingApp._scored`): the same body limit, row limit, column validation and messages,
metrics, input monitor and prediction log; only the body's shape and the answer's differ.

Inputs are either one tensor per column (named after it, shape ``[rows]`` or ``[rows, 1]``) or
one tensor of shape ``[rows, columns]`` holding the columns in schema order. A ``BYTES`` element
of a numeric or boolean column is read as a CSV cell is (``"30.5"`` is 30.5), which is how a
client sends a table of mixed types as one tensor. Every error on a ``/v2`` path is the
protocol's ``{"error": message}``, with modelci's status and message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from modelci import __version__
from modelci.config import Column
from modelci.serving.app import (
    Receive,
    Scope,
    Send,
    ServedModel,
    ServingApp,
    _header,
    _parse_json,
    dumps,
    loads,
)
from modelci.serving.fields import InputError, short, type_name
from modelci.serving.payload import (
    bound_json_structure,
    check_row_count,
    csv_values,
    parse_paused,
)
from modelci.serving.runtime import Prediction
from modelci.serving.schema import InputSchema, RawBatch

Handler = Callable[[Scope, Receive, Send], Awaitable[tuple[int, str | None]]]

_INTS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_FLOATS = ("FP16", "FP32", "FP64")
DATATYPES = ("BOOL", *_INTS, *_FLOATS, "BYTES")
LABELS = "predict"
PROBABILITIES = "predict_proba"
_REQUEST_KEYS = ("id", "parameters", "inputs", "outputs")
_INPUT_KEYS = ("name", "shape", "datatype", "parameters", "data")
_MODEL_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?")


def _bad(message: str) -> InputError:
    return InputError(400, "BAD_REQUEST", message)


def accepted_datatypes(column: Column) -> tuple[str, ...]:
    """The tensor datatypes a column takes; BYTES always (elements read as CSV cells)."""
    if column.type == "float":
        return (*_FLOATS, *_INTS, "BYTES")
    if column.type == "int":
        return (*_INTS, "BYTES")
    if column.type == "bool":
        return ("BOOL", "BYTES")
    kinds = {type(category) for category in column.categories or ()}
    numeric = (*_INTS, *_FLOATS) if kinds & {int, float} else ()
    return (*(("BOOL",) if bool in kinds else ()), *numeric, "BYTES")


def column_datatype(column: Column) -> str:
    """The datatype model metadata declares for a column."""
    if column.type == "float":
        return "FP64"
    if column.type == "int":
        return "INT64"
    if column.type == "bool":
        return "BOOL"
    return _values_datatype(column.categories or ("",))


def _values_datatype(values: Any) -> str:
    """BOOL, INT64 or FP64 when every value is of that JSON kind, else BYTES."""
    kinds = {type(value) for value in values}
    if kinds == {bool}:
        return "BOOL"
    if kinds == {int}:
        return "INT64"
    if kinds and kinds <= {int, float}:
        return "FP64"
    return "BYTES"


def label_datatype(classes: list[Any] | None) -> str:
    """The datatype of the ``predict`` output: a regressor's values are FP64."""
    return "FP64" if classes is None else _values_datatype(classes)


def output_names(classes: list[Any] | None) -> tuple[str, ...]:
    return (LABELS,) if classes is None else (LABELS, PROBABILITIES)


@dataclass
class InferRequest:
    """What an inference request says besides its rows; filled in by :func:`batch_from_infer`."""

    id: str | None = None
    outputs: tuple[str, ...] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _parameters(value: Any, where: str) -> dict[str, Any]:
    """The spec's ``$parameters``: an object of string, number or boolean values."""
    if not isinstance(value, dict):
        raise _bad(f"{where}: expected an object, got {type_name(value)}")
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            raise _bad(
                f"{where}.{short(key, 64)}: expected a string, number or boolean, "
                f"got {type_name(item)}"
            )
    return value


def _object(value: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{where}: expected an object, got {type_name(value)}")
    unknown = [short(key, 64) for key in value if key not in keys]
    if unknown:
        raise _bad(f"{where}: unknown key(s): {', '.join(unknown)} (expected {', '.join(keys)})")
    return value


def _shape(value: Any, where: str) -> list[int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value)
    ):
        raise _bad(f"{where}.shape: expected an array of sizes (integers >= 0)")
    return value


def _elements(data: Any, shape: list[int], where: str) -> list[Any]:
    """The tensor's elements in row-major order, from the flat representation or the natural
    (nested) one, which must follow ``shape`` exactly."""
    if not isinstance(data, list):
        raise _bad(f"{where}.data: expected an array, got {type_name(data)}")
    size = math.prod(shape)
    if list not in set(map(type, data)):
        if len(data) != size:
            raise _bad(f"{where}: shape {shape} holds {size} values, data has {len(data)}")
        return data
    level = [data]
    for depth, dim in enumerate(shape):
        if set(map(type, level)) != {list} or set(map(len, level)) - {dim}:
            raise _bad(
                f"{where}.data: nested arrays do not follow shape {shape} (dimension {depth}); "
                "give the values flat, in row-major order, or nested exactly as the shape"
            )
        level = [item for items in level for item in items]
    if list in set(map(type, level)):
        raise _bad(f"{where}.data: nested deeper than shape {shape}")
    return level


def _checked_datatype(tensor: dict[str, Any], columns: list[Column], where: str) -> str:
    datatype = str(tensor["datatype"])
    if tensor["datatype"] not in DATATYPES:
        raise _bad(
            f"{where}.datatype: {short(datatype)!r} is not a tensor datatype "
            f"({', '.join(DATATYPES)})"
        )
    for column in columns:
        accepted = accepted_datatypes(column)
        if datatype not in accepted:
            raise _bad(
                f"{where}: datatype {datatype} does not fit column {column.name!r} "
                f"({column.type}; accepted: {', '.join(accepted)})"
            )
    return datatype


def _values(column: Column | None, datatype: str, elements: list[Any]) -> list[Any]:
    if datatype == "BYTES" and column is not None and column.type != "category":
        return csv_values(column.type, elements)
    return elements


def _input(value: Any, index: int) -> dict[str, Any]:
    where = f"inputs[{index}]"
    tensor = _object(value, _INPUT_KEYS, where)
    missing = [key for key in ("name", "shape", "datatype", "data") if key not in tensor]
    if missing:
        raise _bad(f"{where}: missing key(s): {', '.join(missing)}")
    if not isinstance(tensor["name"], str):
        raise _bad(f"{where}.name: expected a string, got {type_name(tensor['name'])}")
    parameters = _parameters(tensor.get("parameters", {}), f"{where}.parameters")
    if "binary_data_size" in parameters:
        raise _bad(f"{where}: binary tensor data is not supported; send the values in data")
    return tensor


def batch_from_infer(
    payload: Any,
    schema: InputSchema,
    max_rows: int,
    request: InferRequest,
    outputs: tuple[str, ...],
) -> RawBatch:
    """An inference request's inputs as a RawBatch (the row limit applied from the shapes,
    before any value is read); ``request`` gets its id, parameters and requested outputs."""
    body = _object(payload, _REQUEST_KEYS, "request")
    if "id" in body:
        if not isinstance(body["id"], str):
            raise _bad(f"id: expected a string, got {type_name(body['id'])}")
        request.id = body["id"]
    request.parameters = _parameters(body.get("parameters", {}), "parameters")
    if "outputs" in body:
        request.outputs = _requested(body["outputs"], outputs)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad("inputs: expected a non-empty array of tensors")
    tensors = [_input(value, index) for index, value in enumerate(inputs)]
    names = [tensor["name"] for tensor in tensors]
    if len(set(names)) != len(names):
        raise _bad(f"inputs: tensor names repeat ({', '.join(short(n, 64) for n in names)})")
    if len(tensors) == 1 and names[0] not in schema.name_set:
        return _one_tensor(tensors[0], schema, max_rows)
    return _tensor_per_column(tensors, schema, max_rows)


def _requested(value: Any, outputs: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _bad(f"outputs: expected an array of {{name}} objects, got {type_name(value)}")
    names = []
    for index, item in enumerate(value):
        output = _object(item, ("name", "parameters"), f"outputs[{index}]")
        _parameters(output.get("parameters", {}), f"outputs[{index}].parameters")
        name = output.get("name")
        if name not in outputs:
            raise _bad(
                f"outputs[{index}].name: {short(name)!r} is not an output of this model "
                f"({', '.join(outputs)})"
            )
        names.append(name)
    return tuple(names)


def _tensor_per_column(
    tensors: list[dict[str, Any]], schema: InputSchema, max_rows: int
) -> RawBatch:
    by_name = {column.name: column for column in schema.fields}
    rows: int | None = None
    columns: dict[str, list[Any]] = {}
    for index, tensor in enumerate(tensors):
        name = tensor["name"]
        where = f"inputs[{index}] ({short(name, 64)!r})"
        shape = _shape(tensor["shape"], where)
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise _bad(f"{where}: shape {shape}: a column's tensor is [rows] or [rows, 1]")
        if rows is None:
            rows = shape[0]
            check_row_count(rows, max_rows)
        elif shape[0] != rows:
            raise _bad(f"{where}: {shape[0]} rows, but inputs[0] has {rows}")
        column = by_name.get(name)
        datatype = _checked_datatype(tensor, [column] if column else [], where)
        columns[name] = _values(column, datatype, _elements(tensor["data"], shape, where))
    return RawBatch.from_columns(rows or 0, columns, schema)


def _one_tensor(tensor: dict[str, Any], schema: InputSchema, max_rows: int) -> RawBatch:
    where = f"inputs[0] ({short(tensor['name'], 64)!r})"
    shape = _shape(tensor["shape"], where)
    width = len(schema.fields)
    if len(shape) != 2 or shape[1] != width:
        raise _bad(
            f"{where}: shape {shape}: one tensor holds [rows, {width}], the columns "
            f"{', '.join(schema.names)} in this order (or send one tensor per column, by name)"
        )
    check_row_count(shape[0], max_rows)
    datatype = _checked_datatype(tensor, list(schema.fields), where)
    elements = _elements(tensor["data"], shape, where)
    columns = {
        column.name: _values(column, datatype, elements[order::width])
        for order, column in enumerate(schema.fields)
    }
    return RawBatch.from_columns(shape[0], columns, schema)


def model_name(served: ServedModel) -> str:
    """The model's registered name, else its file's name without the extension."""
    info = served.info
    if info.name:
        return info.name
    return (PurePosixPath(info.uri).stem if info.kind == "file" else "") or "model"


def infer_response(
    served: ServedModel, prediction: Prediction, pid: str, request: InferRequest
) -> dict[str, Any]:
    """The inference response: the requested outputs (all by default), flat, row-major;
    ``parameters.prediction_id`` is the prediction id (row ``i``'s is ``<id>-<i>``)."""
    classes = served.predictor.classes
    labels = prediction.labels
    tensors = {
        LABELS: {
            "name": LABELS,
            "shape": [len(labels)],
            "datatype": label_datatype(classes),
            "data": labels.tolist(),
        }
    }
    probabilities = prediction.probabilities
    if probabilities is not None:
        tensors[PROBABILITIES] = {
            "name": PROBABILITIES,
            "shape": list(probabilities.shape),
            "datatype": "FP64",
            "data": probabilities.ravel().tolist(),
        }
    wanted = request.outputs or tuple(tensors)
    payload: dict[str, Any] = {"model_name": model_name(served)}
    if served.info.version is not None:
        payload["model_version"] = served.info.version
    if request.id is not None:
        payload["id"] = request.id
    payload["parameters"] = {"prediction_id": pid}
    payload["outputs"] = [tensors[name] for name in wanted if name in tensors]
    return payload


def model_metadata(served: ServedModel) -> dict[str, Any]:
    classes = served.predictor.classes
    outputs = [{"name": LABELS, "datatype": label_datatype(classes), "shape": [-1]}]
    if classes is not None:
        outputs.append({"name": PROBABILITIES, "datatype": "FP64", "shape": [-1, len(classes)]})
    payload: dict[str, Any] = {"name": model_name(served)}
    if served.info.version is not None:
        payload["versions"] = [served.info.version]
    payload["platform"] = "onnx_onnxv1" if served.predictor.runtime == "onnx" else "sklearn_skops"
    payload["inputs"] = [
        {"name": column.name, "datatype": column_datatype(column), "shape": [-1]}
        for column in served.schema.fields
    ]
    payload["outputs"] = outputs
    return payload


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_PARAMETERS = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
_TENSOR = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
        "datatype": {"enum": list(DATATYPES)},
        "parameters": _PARAMETERS,
        # row-major values, flat or nested as the shape (null: a missing value, modelci's own)
        "data": {
            "type": "array",
            "items": {"type": ["number", "string", "boolean", "null", "array"]},
        },
    },
    "required": ["name", "shape", "datatype", "data"],
    "additionalProperties": False,
}
_OPENAPI_SCHEMAS: dict[str, Any] = {
    "V2Error": {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
        "additionalProperties": False,
    },
    "V2Tensor": _TENSOR,
    "V2MetadataTensor": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "datatype": {"enum": list(DATATYPES)},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["name", "datatype", "shape"],
    },
}
_ERROR = _ref("V2Error")
_INFER_ERRORS = {
    "400": _answer("Malformed JSON, or tensors that do not fit the model's columns", _ERROR),
    "404": _answer("No such model (or version) on this server", _ERROR),
    "413": _answer("Body over the size limit, or too many rows", _ERROR),
    "415": _answer("A Content-Type other than application/json (none is JSON)", _ERROR),
    "422": _answer("Values that do not match the input schema", _ERROR),
    "503": _answer("Every parse slot for large bodies is taken; retry", _ERROR),
}


def _example(served: ServedModel) -> dict[str, Any]:
    """A valid inference request of two rows, one tensor per column."""
    rows = served.schema.example_rows(2)
    return {
        "id": "example",
        "inputs": [
            {
                "name": column.name,
                "shape": [len(rows)],
                "datatype": column_datatype(column),
                "data": [row[column.name] for row in rows],
            }
            for column in served.schema.fields
        ],
    }


def openapi_paths(served: ServedModel, max_rows: int) -> dict[str, Any]:
    """The OpenAPI paths of the v2 routes; ``{name}`` is the served model's name."""
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [model_name(served)]},
    }
    outputs = output_names(served.predictor.classes)
    request = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "inputs": {"type": "array", "items": _ref("V2Tensor"), "minItems": 1},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"enum": list(outputs)}, "parameters": _PARAMETERS},
                    "required": ["name"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["inputs"],
        "additionalProperties": False,
    }
    response = {
        "type": "object",
        "properties": {
            "model_name": {"const": model_name(served)},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "outputs": {"type": "array", "items": _ref("V2Tensor")},
        },
        "required": ["model_name", "outputs"],
        "additionalProperties": False,
    }
    ready: dict[str, Any] = {
        "type": "object",
        "properties": {"ready": {"type": "boolean"}},
        "required": ["ready"],
    }
    model_ready = {
        **ready,
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    }
    return {
        "/v2": {
            "get": {
                "summary": "Open Inference Protocol: server metadata",
                "operationId": "v2ServerMetadata",
                "responses": {
                    "200": _answer(
                        "Server name, version and protocol extensions (none)",
                        {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "version": {"type": "string"},
                                "extensions": {"type": "array", "items": {"type": "string"}},
                            },
                            "required": ["name", "version", "extensions"],
                        },
                    )
                },
            }
        },
        "/v2/health/live": {
            "get": {
                "summary": "Open Inference Protocol: server live",
                "operationId": "v2ServerLive",
                "responses": {
                    "200": _answer(
                        "Live",
                        {"type": "object", "properties": {"live": {"const": True}}},
                    )
                },
            }
        },
        "/v2/health/ready": {
            "get": {
                "summary": "Open Inference Protocol: server ready (400 while draining)",
                "operationId": "v2ServerReady",
                "responses": {
                    "200": _answer("Ready", ready),
                    "400": _answer("Not ready (draining before shutdown)", ready),
                },
            }
        },
        "/v2/models/{name}": {
            "get": {
                "summary": "Open Inference Protocol: model metadata (inputs from the columns)",
                "operationId": "v2ModelMetadata",
                "parameters": [name],
                "responses": {
                    "200": _answer(
                        "Model metadata",
                        {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "versions": {"type": "array", "items": {"type": "string"}},
                                "platform": {"type": "string"},
                                "inputs": {"type": "array", "items": _ref("V2MetadataTensor")},
                                "outputs": {"type": "array", "items": _ref("V2MetadataTensor")},
                            },
                            "required": ["name", "platform", "inputs", "outputs"],
                        },
                    ),
                    "404": _INFER_ERRORS["404"],
                },
            }
        },
        "/v2/models/{name}/ready": {
            "get": {
                "summary": "Open Inference Protocol: model ready (400 while draining)",
                "operationId": "v2ModelReady",
                "parameters": [name],
                "responses": {
                    "200": _answer("Ready", model_ready),
                    "400": _answer("Not ready (draining before shutdown)", model_ready),
                    "404": _INFER_ERRORS["404"],
                },
            }
        },
        "/v2/models/{name}/infer": {
            "post": {
                "summary": "Open Inference Protocol: inference (one tensor per column, or one "
                f"[rows, columns] tensor; at most {max_rows} rows)",
                "operationId": "v2Infer",
                "parameters": [name],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": request, "example": _example(served)}
                    },
                },
                "responses": {"200": _answer("The outputs", response), **_INFER_ERRORS},
            }
        },
    }


class OpenInference:
    """The v2 routes of one :class:`ServingApp`, answering through its request machinery."""

    def __init__(self, app: ServingApp) -> None:
        self.app = app

    @staticmethod
    def owns(path: str) -> bool:
        return path == "/v2" or path.startswith("/v2/")

    def routes(self) -> dict[str, dict[str, Handler]]:
        """The fixed paths (``/v2/`` as well: the protocol's OpenAPI file spells it so)."""
        return {
            "/v2": {"GET": self._server_metadata},
            "/v2/": {"GET": self._server_metadata},
            "/v2/health/live": {"GET": self._live},
            "/v2/health/ready": {"GET": self._server_ready},
        }

    def model_route(self, path: str) -> tuple[str, dict[str, Handler]] | None:
        """The metrics label (a closed set) and methods of a ``/v2/models/...`` path."""
        match = _MODEL_PATH.fullmatch(path)
        if match is None:
            return None
        name, version, action = match.groups()

        def bound(handler: Callable[..., Awaitable[tuple[int, str | None]]]) -> Handler:
            async def call(scope: Scope, receive: Receive, send: Send) -> tuple[int, str | None]:
                return await handler(scope, receive, send, name, version)

            return call

        label = "/v2/models/{name}" + (action or "")
        if action == "/infer":
            return label, {"POST": bound(self._infer)}
        return label, {"GET": bound(self._model_ready if action else self._model_metadata)}

    def describe(self, document: dict[str, Any], served: ServedModel) -> None:
        """Add the v2 routes to the server's OpenAPI document (``/openapi.json``)."""
        document["paths"].update(openapi_paths(served, self.app.settings.max_rows))
        document["components"]["schemas"].update(_OPENAPI_SCHEMAS)

    # -- handlers ---------------------------------------------------------------------------
    async def _server_metadata(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[int, str | None]:
        return await self.app._json(
            send, 200, {"name": "modelci", "version": __version__, "extensions": []}
        )

    async def _live(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, str | None]:
        return await self.app._json(send, 200, {"live": True})

    async def _server_ready(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[int, str | None]:
        # The protocol: 200 is true, a 4xx false (Triton answers 400 too).
        ready = not self.app.draining
        return await self.app._json(send, 200 if ready else 400, {"ready": ready})

    def _missing(self, served: ServedModel, name: str, version: str | None) -> InputError | None:
        served_name = model_name(served)
        if name != served_name:
            return InputError(
                404,
                "NOT_FOUND",
                f"no model {short(name, 64)!r}: this server serves {served_name!r}",
            )
        if version is not None and version != served.info.version:
            serving = served.info.version
            return InputError(
                404,
                "NOT_FOUND",
                f"model {served_name!r} has no version {short(version, 64)!r} here "
                + (f"(serving version {serving})" if serving else "(it is not versioned)"),
            )
        return None

    async def _model_metadata(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> tuple[int, str | None]:
        served = self.app.served
        missing = self._missing(served, name, version)
        if missing is not None:
            return await self.app._error(send, missing)
        return await self.app._json(send, 200, model_metadata(served))

    async def _model_ready(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> tuple[int, str | None]:
        served = self.app.served
        missing = self._missing(served, name, version)
        if missing is not None:
            return await self.app._error(send, missing)
        ready = not self.app.draining
        return await self.app._json(
            send, 200 if ready else 400, {"name": model_name(served), "ready": ready}
        )

    async def _infer(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> tuple[int, str | None]:
        missing = self._missing(self.app.served, name, version)
        if missing is not None:
            return await self.app._error(send, missing)
        request = InferRequest()
        app = self.app

        def parser(scope: Scope, schema: InputSchema) -> Callable[[bytes], RawBatch]:
            if _header(scope, b"inference-header-content-length") is not None:
                raise _bad(
                    "binary tensor data (Inference-Header-Content-Length) is not supported; "
                    "send the tensors as JSON"
                )
            # The body is always JSON here: Triton's client sends no Content-Type at all.
            if app._media_type(scope) not in (b"", b"application/json"):
                raise app._unsupported(scope, "application/json")
            rows = app.settings.max_rows
            outputs = output_names(app.served.predictor.classes)

            def parse(body: bytes) -> RawBatch:
                # a [rows, 1] tensor in its natural form spends an array and a comma per value
                bound_json_structure(body, 2 * len(schema.fields), rows)
                return parse_paused(
                    len(body),
                    lambda: batch_from_infer(_parse_json(body), schema, rows, request, outputs),
                )

            return parse

        def payload(served: ServedModel, prediction: Prediction, pid: str) -> dict[str, Any]:
            return infer_response(served, prediction, pid, request)

        return await app._scored(scope, receive, send, parser, payload)

    @staticmethod
    def errors(send: Send) -> Send:
        """``send`` answering modelci's error body ``{"error_code", "message", ...}`` as the
        protocol's ``{"error": message}`` (same status): every error of a ``/v2`` path, whichever
        part of the server raised it."""
        held: dict[str, Any] | None = None

        async def errors(message: dict[str, Any]) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            body = message.get("body", b"")
            try:
                error = loads(body)
            except ValueError:
                error = None
            if isinstance(error, dict) and "error_code" in error and "message" in error:
                body = dumps({"error": error["message"]})
            headers = [
                (key, str(len(body)).encode() if key == b"content-length" else value)
                for key, value in held.get("headers", ())
            ]
            await send({**held, "headers": headers})
            await send({**message, "body": body})
            held = None

        return errors
