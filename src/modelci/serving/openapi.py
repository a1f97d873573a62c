"""The OpenAPI 3.1 document of the serving API, generated from the model's input schema."""

from __future__ import annotations

from typing import Any

from modelci import __version__
from modelci.serving.schema import InputSchema


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = {"$ref": "#/components/schemas/Error"}
_CLIENT_ERRORS = {
    "400": _response("Malformed JSON or wrong body structure", ERROR),
    "413": _response("Body over the size limit, or too many rows", ERROR),
    "415": _response("Content-Type not accepted (JSON; /invocations also takes text/csv)", ERROR),
    "422": _response("Rows that do not match the input schema", ERROR),
}


def openapi_document(schema: InputSchema, max_rows: int) -> dict[str, Any]:
    row_ref = {"$ref": "#/components/schemas/Row"}
    rows = {"type": "array", "items": row_ref, "minItems": 1, "maxItems": max_rows}
    names = list(schema.names)
    value_types = [field.json_schema() for field in schema.fields]
    split = {
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"enum": names}, "const": names},
            "data": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_rows,
                "items": {
                    "type": "array",
                    "prefixItems": value_types,
                    "minItems": len(names),
                    "maxItems": len(names),
                },
            },
        },
        "required": ["columns", "data"],
        "additionalProperties": False,
    }
    invocation = {
        "oneOf": [
            {
                "type": "object",
                "properties": {"dataframe_split": split},
                "required": ["dataframe_split"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"dataframe_records": rows},
                "required": ["dataframe_records"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"inputs": rows},
                "required": ["inputs"],
                "additionalProperties": False,
            },
        ]
    }
    prediction_items: dict[str, Any] = {}
    predict_response = {
        "type": "object",
        "properties": {
            "predictions": {"type": "array", "items": prediction_items},
            "probabilities": {"type": "array", "items": {"type": "array"}},
            "classes": {"type": "array"},
            "model_version": {"type": ["string", "null"]},
            "model_sha256": {"type": "string"},
        },
        "required": ["predictions", "model_sha256"],
    }
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelci serving API",
            "version": __version__,
            "description": "Predictions from the served model. The request schema is generated "
            "from the model's input columns (params.yaml data.columns).",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Predict one row (an object) or many (an array of objects)",
                    "operationId": "predict",
                    "requestBody": _json_body({"oneOf": [row_ref, rows]}),
                    "responses": {
                        "200": _response("Predictions (and probabilities)", predict_response),
                        **_CLIENT_ERRORS,
                    },
                }
            },
            "/invocations": {
                "post": {
                    "summary": "MLflow scoring protocol (drop-in for `mlflow models serve`)",
                    "operationId": "invocations",
                    "requestBody": _json_body(invocation),
                    "responses": {
                        "200": _response(
                            "Predictions",
                            {
                                "type": "object",
                                "properties": {"predictions": {"type": "array"}},
                                "required": ["predictions"],
                            },
                        ),
                        **_CLIENT_ERRORS,
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness: the process answers",
                    "operationId": "health",
                    "responses": {"200": _response("Alive", status)},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: model loaded and warmed up, not draining",
                    "operationId": "ready",
                    "responses": {
                        "200": _response("Ready", status),
                        "503": _response("Draining before shutdown", status),
                    },
                }
            },
            "/model": {
                "get": {
                    "summary": "The served model: version, sha256 digests, runtime, input schema",
                    "operationId": "model",
                    "responses": {"200": _response("Model metadata", {"type": "object"})},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Row": schema.row_json_schema(),
                "Error": {
                    "type": "object",
                    "properties": {
                        "error_code": {"type": "string"},
                        "message": {"type": "string"},
                        "problems": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "row": {"type": "integer"},
                                    "field": {"type": ["string", "null"]},
                                    "problem": {"type": "string"},
                                },
                            },
                        },
                        "problem_count": {"type": "integer", "minimum": 1},
                    },
                    "required": ["error_code", "message"],
                },
            }
        },
    }
