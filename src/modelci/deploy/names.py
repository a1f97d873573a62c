"""The deploy target names, importable by the CLI parser at no cost (no third-party imports)."""

DESCRIPTIONS = {
    "none": "deploy nothing (the summary says so)",
    "registry": "registry only: servers following @champion pick the new version up",
    "kubernetes": "kubectl apply -k, set image to the pushed digest, rollout status; "
    "undo: rollout undo",
    "container": "blue/green on a Docker or Podman host (local, DOCKER_HOST or ssh): start "
    "beside the old container, smoke-test, switch traffic, stop the old one",
    "cloudrun": "a Knative Service with the image digest via gcloud run services replace; "
    "undo: traffic back to the previous revision",
    "lambda": "aws lambda update-function-code --publish and an alias shift; undo: alias back",
}
"""Every target, with the one line ``--help`` shows."""

IMAGE_TARGETS = frozenset({"kubernetes", "container", "cloudrun", "lambda"})
"""The targets that run the serving image (``release-image`` builds it only for these)."""
