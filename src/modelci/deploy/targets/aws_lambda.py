"""``lambda``: ``aws lambda update-function-code --image-uri ... --publish`` makes a new function
version, an alias (``live``) is moved to it; undone by moving the alias back."""

from __future__ import annotations

import json
from typing import Any

from modelci.config import LambdaParams
from modelci.deploy.errors import DeployError
from modelci.deploy.run import run, tool
from modelci.deploy.smoke import SmokeCheck
from modelci.deploy.targets.base import Verified, verify_url
from modelci.deploy.targets.cloudrun import image_digest
from modelci.model_version import Version


class AwsLambda:
    name = "lambda"

    def __init__(self, params: LambdaParams) -> None:
        if not params.function:
            raise DeployError(
                "registry.aws_lambda.function is not set (the lambda target needs it)"
            )
        self.params = params
        self.previous: str | None = None
        self.published: str | None = None

    def _aws(self, *args: str) -> dict[str, Any]:
        where = ["--output", "json"] + (
            ["--region", self.params.region] if self.params.region else []
        )
        out = run([tool("aws", self.name), "lambda", *args, *where], f"aws lambda {args[0]}")
        try:
            answer = json.loads(out) if out.strip() else {}
        except json.JSONDecodeError:
            raise DeployError(f"aws lambda {args[0]} printed no JSON: {out[:120]!r}") from None
        return answer if isinstance(answer, dict) else {}

    def _alias_to(self, version: str, create: bool) -> None:
        verb = "create-alias" if create else "update-alias"
        self._aws(
            verb, "--function-name", self.params.function, "--name", self.params.alias,
            "--function-version", version,
        )  # fmt: skip

    def deploy(self, version: Version, image: str | None) -> list[str]:
        image_digest(image, self.name)
        function = self.params.function
        try:
            alias = self._aws("get-alias", "--function-name", function, "--name", self.params.alias)
            self.previous = str(alias["FunctionVersion"])
        except (DeployError, KeyError):
            self.previous = None  # no alias yet: this is the first deploy
        published = self._aws(
            "update-function-code", "--function-name", function, "--image-uri", str(image),
            "--publish",
        )  # fmt: skip
        if "Version" not in published:
            raise DeployError("aws lambda update-function-code --publish returned no Version")
        self.published = str(published["Version"])
        self._aws("wait", "published-version-active", "--function-name", function,
                  "--qualifier", self.published)  # fmt: skip
        self._alias_to(self.published, create=self.previous is None)
        before = f" (was {self.previous})" if self.previous else " (new alias)"
        return [
            f"lambda: {function}:{self.params.alias} -> version {self.published}{before}, "
            f"model version {version.version}"
        ]

    def verify(self, check: SmokeCheck, smoke_url: str | None) -> Verified:
        return verify_url(check, smoke_url)

    def undo(self) -> list[str]:
        function, alias = self.params.function, self.params.alias
        if self.published is None:
            return []
        if self.previous is None:
            self._aws("delete-alias", "--function-name", function, "--name", alias)
            return [f"lambda: deleted alias {alias} (there was no previous version)"]
        self._alias_to(self.previous, create=False)
        return [f"lambda: {function}:{alias} -> version {self.previous} again"]
